"""Shared fixtures: a small synthetic model, and the real-data switch."""

from __future__ import annotations

import pytest
import torch

from mrmp.experiment import Data, ModelSpec, build_model, load_data
from mrmp.skeleton import data_root

HAVE_DATA = (data_root() / "sbu_kinect_interaction").is_dir()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="../shared/data is absent")


@pytest.fixture(scope="session")
def synthetic() -> Data:
    return load_data("synthetic-sbu")


@pytest.fixture
def small_model(synthetic: Data):
    """An untrained model on the SBU layout, small enough for quick tests."""
    torch.manual_seed(0)
    return build_model(synthetic, ModelSpec(prior="gaussian", arch={"hidden": 64}))

"""Shared fixtures: a small synthetic model, and the real-data switch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lab.experiment import (
    Data,
    ModelSpec,
    build_model,
    evaluation_table,
    fit,
    load_data,
    manifest_for,
    train_config,
)
from mrmp.store import save_model
from training.datasets import data_root

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


def train_store(data: Data, folder: Path, *, test_fold: int | None, epochs: int, **arch) -> Path:
    """Train a small MRMP on `data` (holding out `test_fold`) and save it as a model store."""
    _, _, xte, yte = data.split(test_fold)
    model = build_model(data, ModelSpec(prior="gaussian", arch=arch))
    cfg = train_config(
        data,
        method="mrmp",
        epochs=epochs,
        rates=(0.5, 0.9),
        rates_per_step=None,
        rate_jitter=False,
    )
    fit(data, model, test_fold, cfg, show_progress=False)
    rates = (0.5, 0.9, 0.98)
    evaluation = evaluation_table(model, xte, yte, rates, f"fold {test_fold} held out")
    manifest = manifest_for(
        data, model, cfg, name=folder.name, command="tests", evaluation=evaluation
    )
    save_model(folder, model, manifest)
    return folder


@pytest.fixture(scope="session")
def synthetic_store(synthetic: Data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MRMP store on the synthetic SBU layout, trained for a few epochs."""
    return train_store(
        synthetic,
        tmp_path_factory.mktemp("store") / "synthetic-mrmp",
        test_fold=0,
        epochs=5,
        hidden=64,
    )


@pytest.fixture(scope="session")
def sbu_fold0_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MRMP trained on the real SBU folds 1-4 (fold 0 held out)."""
    return train_store(
        load_data("sbu"),
        tmp_path_factory.mktemp("store") / "sbu-fold0",
        test_fold=0,
        epochs=100,
        hidden=256,
    )

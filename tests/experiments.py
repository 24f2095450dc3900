"""A small experiment on the synthetic dataset, as a configs/<dataset>.toml holds one."""

from __future__ import annotations

import tomllib
from typing import Any

from lab.config import Experiment

# Quick settings: a few epochs.
SYNTHETIC_TOML = """
dataset = "synthetic-sbu"

[protocol]
description = "synthetic"
filters = 8
batch_size = 200
test_folds = [0]

[dense]
epochs = 2
lr = 0.001
lr_schedule = "constant"
temporal_crops = 2
mp_finetune_epochs = 1

[mrmp]
epochs = 3
rates_per_step = 4
rate_jitter = true
top_rate_every_step = true
kl_weight = 1.0
priors = ["gaussian", "uniform"]

[srmp]
epochs = 1
kl_weight = 1.0
"""


def synthetic_experiment(**sections: dict[str, Any]) -> Experiment:
    """SYNTHETIC_TOML's experiment; each keyword updates that section's keys."""
    raw = tomllib.loads(SYNTHETIC_TOML)
    for name, changes in sections.items():
        raw[name] = {**raw.get(name, {}), **changes}
    return Experiment.model_validate(raw)

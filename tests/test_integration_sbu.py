"""Real data: a small MRMP trained on SBU folds 1-4 classifies the held-out fold 0."""

import pytest

from mrmp.evaluate import evaluate_rates
from mrmp.experiment import ModelSpec, build_model, load_data, train_config
from mrmp.train import train
from tests.conftest import needs_data


@needs_data
@pytest.mark.slow
def test_small_mrmp_on_sbu_fold0_generalizes():
    data = load_data("sbu")
    xtr, ytr, xte, yte = data.split(0)
    assert len(xte) == 55
    model = build_model(data, ModelSpec(prior="gaussian", arch={"hidden": 256}))
    cfg = train_config(
        data, method="mrmp", epochs=100, rates=(0.5, 0.9), rates_per_step=None, rate_jitter=False
    )
    train(model, xtr, ytr, cfg, show_progress=False)
    table = evaluate_rates(model, xte, yte, [0.5, 0.9], "prior")
    for key, row in table.items():
        assert row["accuracy"] >= 60.0, (key, row)
        assert row["observed_rate"] == pytest.approx(float(key), abs=0.02)

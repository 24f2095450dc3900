"""The shipped model: trained on all data with the best prior, carrying the fold-mean table."""

import json

import pytest

from lab.release import release
from lab.reproduce import Reproduction
from mrmp.store import load_model
from tests.experiments import synthetic_experiment


def test_release_trains_the_best_prior_and_carries_the_fold_table(tmp_path):
    work = tmp_path / "units"
    exp = synthetic_experiment(mrmp={"epochs": 2, "priors": ["gaussian", "laplace"]})
    repro = Reproduction(exp, work, log=lambda _: None)
    with pytest.raises(FileNotFoundError, match="run `mrmp reproduce` first"):
        release(repro, tmp_path / "model", name="m", command="test")
    repro.run(("mrmp",))
    manifest = release(repro, tmp_path / "model", name="m", command="test")
    scores = json.loads((work / "srmp_prior.json").read_text())["mean_seen_accuracy"]
    assert manifest.prior == max(scores, key=scores.get)
    _, stored = load_model(tmp_path / "model")
    assert stored.version == manifest.version and stored.name == "m"
    unit = json.loads((work / f"mrmp/{manifest.prior}/fold0.json").read_text())
    for mode in ("prior", "exact"):
        table = stored.evaluated(mode)
        for key, row in unit[mode].items():
            assert table[key].accuracy == pytest.approx(row["accuracy"], abs=1e-4)
    assert stored.evaluation.samples == len(repro.data.y)
    assert stored.training.config["epochs"] == 2
    # Units trained under other settings would carry a table that is not this model's.
    longer = synthetic_experiment(mrmp={"epochs": 3, "priors": ["gaussian", "laplace"]})
    other = Reproduction(longer, work, log=lambda _: None)
    with pytest.raises(ValueError, match=r"was made with mrmp\.epochs = 2"):
        release(other, tmp_path / "other", name="m", command="test")

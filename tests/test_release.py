"""The shipped model: trained on all data with the best prior, carrying the table of the
reproduction's units (mean over seeds and folds, and the spread over seeds)."""

import json
import statistics

import pytest

from lab.release import cross_validated_table, release
from lab.reproduce import Reproduction
from mrmp.store import load_model
from tests.experiments import synthetic_experiment


def test_release_trains_the_best_prior_and_carries_the_seed_and_fold_table(tmp_path, monkeypatch):
    # MRMP units evaluated at the seen rates and two others only, to keep the test short.
    monkeypatch.setattr("lab.reproduce.RATE_GRID", (0.5, 0.93))
    work = tmp_path / "units"
    sections = {"priors": ["gaussian", "laplace"]}
    exp = synthetic_experiment(mrmp={"epochs": 2, **sections}).model_copy(update={"seeds": (0, 1)})
    repro = Reproduction(exp, work, log=lambda _: None)
    with pytest.raises(FileNotFoundError, match="run `mrmp reproduce` first"):
        release(repro, tmp_path / "model", name="m", command="test")
    repro.run(("mrmp",))
    manifest = release(repro, tmp_path / "model", name="m", command="test")
    chosen = json.loads((work / "srmp_prior.json").read_text())
    scores = chosen["mean_seen_accuracy"]
    assert manifest.prior == max(scores, key=scores.get) and chosen["seeds"] == [0, 1]
    _, stored = load_model(tmp_path / "model")
    assert stored.version == manifest.version and stored.name == "m"
    units = [
        json.loads((work / f"mrmp/{manifest.prior}/seed{s}/fold0.json").read_text()) for s in (0, 1)
    ]
    table = cross_validated_table(repro, manifest.prior)["rates"]
    for mode in ("prior", "exact"):
        evaluated = stored.evaluated(mode)
        for key in units[0][mode]:
            accs = [u[mode][key]["accuracy"] for u in units]
            assert evaluated[key].accuracy == pytest.approx(statistics.mean(accs), abs=1e-4)
            assert table[mode][key]["accuracy_std"] == round(statistics.stdev(accs), 4)
            assert evaluated[key].accuracy_std == table[mode][key]["accuracy_std"]
    assert stored.evaluation.samples == len(repro.data.y)
    assert stored.training.config["epochs"] == 2 and stored.training.config["seed"] == 0
    # One seed: no spread in the table.
    one = Reproduction(exp, work, seeds=(0,), log=lambda _: None)
    assert (
        "accuracy_std" not in cross_validated_table(one, manifest.prior)["rates"]["prior"]["0.50"]
    )
    # Units trained under other settings would carry a table that is not this model's.
    longer = synthetic_experiment(mrmp={"epochs": 3, **sections})
    other = Reproduction(longer, work, log=lambda _: None)
    with pytest.raises(ValueError, match=r"seed0/fold0\.json was made with mrmp\.epochs = 2"):
        release(other, tmp_path / "other", name="m", command="test")

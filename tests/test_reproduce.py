"""The reproduction's results file has the issue's shape, and its table and plots are written;
each unit records the settings that shaped it, and a unit of other settings is refused."""

import json
import re

import pytest

from lab.reproduce import Reproduction
from tests.experiments import synthetic_experiment
from training.evaluate import RATE_GRID, rate_key
from training.train import PAPER_RATES


def test_results_shape_table_and_plots(tmp_path):
    exp = synthetic_experiment()
    work = tmp_path / "units"
    command = "mrmp reproduce --config synthetic.toml"
    repro = Reproduction(exp, work, command=command, log=lambda _: None)
    repro.run()
    repro.aggregate(tmp_path / "out")
    results = json.loads((tmp_path / "out" / "synthetic-sbu.json").read_text())
    for key in ("dataset", "protocol", "command", "params", "seen_rates", "dense", "mp", "srmp"):
        assert key in results
    assert results["command"] == command
    seen = [rate_key(r) for r in PAPER_RATES]
    assert list(results["mp"]) == seen and list(results["srmp"]) == seen
    assert set(results["mrmp"]) == {"gaussian", "uniform"}
    for prior in ("gaussian", "uniform"):
        assert {rate_key(r) for r in RATE_GRID} <= set(results["mrmp"][prior])
        assert set(results["observed_rate"][prior]) == set(results["mrmp"][prior])
        assert results["rate_error_max"][prior]["exact"] < 1e-3
    table = (tmp_path / "out" / "synthetic-sbu.md").read_text()
    assert "| **0.98** |" in table and "| 0.93 (unseen) |" in table
    for plot in ("synthetic-sbu_accuracy.png", "synthetic-sbu_observed_rate.png"):
        assert (tmp_path / "out" / plot).stat().st_size > 1000
    assert results["epochs"] == {"dense": 2, "mrmp": 3, "srmp": 1, "mp_finetune": 1}
    # Each unit records the settings it was made with and their hash.
    unit = json.loads((work / "mrmp" / "gaussian" / "fold0.json").read_text())
    assert unit["settings"] == {
        "mrmp_epochs": 3,
        "rates_per_step": 4,
        "rate_jitter": True,
        "top_rate_every_step": True,
        "kl_weight": 1.0,
    }
    assert unit["settings_hash"] == exp.unit_hash("mrmp") != exp.unit_hash("srmp")
    dense = json.loads((work / "dense" / "fold0.json").read_text())
    assert dense["settings"] == {
        "epochs": 2,
        "dense_lr": 1e-3,
        "dense_lr_schedule": "constant",
        "dense_temporal_crops": 2,
        "mp_finetune_epochs": 1,
    }
    assert results["dense_batch_size"] == 200  # none given: the protocol's
    # Other settings refuse the units, whether aggregating or resuming (rather than mixing
    # runs of two recipes), naming the setting and the value the unit was made with.
    changes = {
        "mrmp.top_rate_every_step = True": {"mrmp": {"top_rate_every_step": False}},
        "mrmp.epochs = 3": {"mrmp": {"epochs": 2}},
        "srmp.epochs = 1": {"srmp": {"epochs": 2}},
        "dense.epochs = 2": {"dense": {"epochs": 3}},
        "dense.lr_schedule = 'constant'": {"dense": {"lr_schedule": "cosine"}},
        "srmp.kl_weight = 1.0": {"srmp": {"kl_weight": 0.5}},
        "dense.batch_size = None": {"dense": {"batch_size": 8}},
    }
    for message, sections in changes.items():
        other = Reproduction(synthetic_experiment(**sections), work, log=lambda _: None)
        with pytest.raises(ValueError, match=re.escape(f"was made with {message}, not those of")):
            other.aggregate(tmp_path / "other")
    other = Reproduction(synthetic_experiment(mrmp={"epochs": 2}), work, log=lambda _: None)
    with pytest.raises(ValueError, match=r"mrmp/gaussian/fold0\.json was made with mrmp\.epochs"):
        other.run(("mrmp",))
    # Units also record the dataset's protocol (descriptor, augmentation, batch, filters): a
    # unit of another protocol is refused too, naming what differs.
    assert dense["protocol"] == exp.protocol.record() == results["protocol_settings"]
    assert results["protocol_settings"]["descriptor"]["chunks"] == 4
    batch = synthetic_experiment(protocol={"batch_size": 7})
    with pytest.raises(ValueError, match=r"dense/fold0\.json was made with protocol\.batch_size"):
        Reproduction(batch, work, log=lambda _: None).aggregate(tmp_path / "other")
    # A unit that records no hash, or a hash of other settings, is refused too.
    path = work / "dense" / "fold0.json"
    path.write_text(json.dumps({k: v for k, v in dense.items() if k != "settings_hash"}))
    with pytest.raises(ValueError, match="records no settings hash"):
        repro.aggregate(tmp_path / "other")
    path.write_text(json.dumps({**dense, "settings_hash": "0" * 16}))
    with pytest.raises(ValueError, match=r"was made with settings hash 0{16}"):
        repro.aggregate(tmp_path / "other")
    path.write_text(json.dumps(dense))
    # The SRMP prior is chosen again when the settings it was chosen under changed.
    prior_path = work / "srmp_prior.json"
    chosen = json.loads(prior_path.read_text())
    assert chosen["settings_hash"] == exp.unit_hash("mrmp")
    assert repro._chosen_prior() == chosen["prior"]
    assert Reproduction(batch, work, log=lambda _: None)._chosen_prior() is None
    assert other._chosen_prior() is None
    with pytest.raises(ValueError, match=r"mrmp/gaussian/fold0\.json was made with"):
        other.best_prior()


def test_mrmp_priors_split_trains_only_those(tmp_path):
    exp = synthetic_experiment(mrmp={"epochs": 1})
    work = tmp_path / "units"
    Reproduction(exp, work, mrmp_priors=("uniform",), log=lambda _: None).run(("mrmp",))
    assert sorted(p.name for p in (work / "mrmp").iterdir()) == ["uniform"]

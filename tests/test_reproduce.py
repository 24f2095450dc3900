"""The reproduction's results file has the issue's shape, and its table and plots are written."""

import json
from dataclasses import replace

import pytest

from lab.reproduce import ReproConfig, Reproduction
from training.evaluate import RATE_GRID, rate_key
from training.train import PAPER_RATES


def test_results_shape_table_and_plots(tmp_path):
    cfg = ReproConfig(
        dataset="synthetic-sbu",
        work=tmp_path / "units",
        epochs=2,
        dense_temporal_crops=2,
        mrmp_epochs=3,
        srmp_epochs=1,
        mp_finetune_epochs=1,
        priors=("gaussian", "uniform"),
        command="mrmp reproduce --dataset synthetic-sbu",
    )
    repro = Reproduction(cfg, log=lambda _: None)
    repro.run()
    repro.aggregate(tmp_path / "out")
    results = json.loads((tmp_path / "out" / "synthetic-sbu.json").read_text())
    for key in ("dataset", "protocol", "command", "params", "seen_rates", "dense", "mp", "srmp"):
        assert key in results
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
    # Each unit records the settings it was made with; other settings refuse it, whether
    # aggregating or resuming (rather than mixing runs of two recipes).
    unit = json.loads((cfg.work / "mrmp" / "gaussian" / "fold0.json").read_text())
    assert unit["settings"] == {
        "mrmp_epochs": 3,
        "rates_per_step": 4,
        "rate_jitter": True,
        "top_rate_every_step": True,
        "kl_weight": 1.0,
    }
    dense = json.loads((cfg.work / "dense" / "fold0.json").read_text())
    assert dense["settings"] == {
        "epochs": 2,
        "dense_lr": 1e-3,
        "dense_lr_schedule": "constant",
        "dense_temporal_crops": 2,
        "dense_batch_size": None,
        "mp_finetune_epochs": 1,
    }
    assert results["dense_batch_size"] == 200  # none given: the protocol's
    changes = {
        "top_rate_every_step": (False, "made with --top-rate-every-step, not --no-top"),
        "mrmp_epochs": (2, "made with --mrmp-epochs 3, not --mrmp-epochs 2"),
        "srmp_epochs": (2, "made with --srmp-epochs 1, not --srmp-epochs 2"),
        "epochs": (3, "made with --epochs 2, not --epochs 3"),
        "dense_lr_schedule": ("cosine", "--dense-lr-schedule constant, not --dense-lr-schedule co"),
        "kl_weight": (0.5, r"--kl-weight 1\.0, not --kl-weight 0\.5"),
        "dense_batch_size": (8, r"no --dense-batch-size \(the protocol's\), not --dense-bat"),
    }
    for field, (value, message) in changes.items():
        other = Reproduction(replace(cfg, **{field: value}), log=lambda _: None)
        with pytest.raises(ValueError, match=message):
            other.aggregate(tmp_path / "other")
    other = Reproduction(replace(cfg, mrmp_epochs=2), log=lambda _: None)
    with pytest.raises(ValueError, match=r"mrmp/gaussian/fold0\.json was made with"):
        other.run(("mrmp",))
    # Units also record the dataset's protocol (descriptor, augmentation, batch, filters): a
    # unit of another protocol is refused too, naming what differs.
    assert dense["protocol"] == repro.protocol_settings() == results["protocol_settings"]
    assert results["protocol_settings"]["descriptor"]["chunks"] == 4
    path = cfg.work / "dense" / "fold0.json"
    tampered = {**dense, "protocol": {**dense["protocol"], "batch_size": 7}}
    path.write_text(json.dumps(tampered))
    with pytest.raises(ValueError, match=r"dense/fold0\.json was made under another .*batch_size"):
        repro.aggregate(tmp_path / "other")
    path.write_text(json.dumps(dense))
    # The SRMP prior is chosen again when the protocol it was chosen under changed.
    prior_path = cfg.work / "srmp_prior.json"
    chosen = json.loads(prior_path.read_text())
    assert chosen["protocol"] == repro.protocol_settings()
    assert repro._chosen_prior() == chosen["prior"]
    prior_path.write_text(json.dumps({**chosen, "protocol": {}}))
    assert repro._chosen_prior() is None
    prior_path.write_text(json.dumps(chosen))
    # The SRMP prior was chosen among MRMP units of other settings: not reused.
    assert json.loads((cfg.work / "srmp_prior.json").read_text())["settings"]["mrmp_epochs"] == 3
    with pytest.raises(ValueError, match=r"mrmp/gaussian/fold0\.json was made with"):
        other.best_prior()


def test_mrmp_priors_split_trains_only_those(tmp_path):
    cfg = ReproConfig(
        dataset="synthetic-sbu",
        work=tmp_path / "units",
        mrmp_epochs=1,
        priors=("gaussian", "uniform"),
        mrmp_priors=("uniform",),
    )
    Reproduction(cfg, log=lambda _: None).run(("mrmp",))
    assert sorted(p.name for p in (cfg.work / "mrmp").iterdir()) == ["uniform"]

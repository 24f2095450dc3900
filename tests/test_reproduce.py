"""The reproduction's results file has the issue's shape, and its table and plots are written."""

import json
from dataclasses import replace

import pytest

from mrmp.evaluate import RATE_GRID, rate_key
from mrmp.reproduce import ReproConfig, Reproduction
from mrmp.train import PAPER_RATES


def test_results_shape_table_and_plots(tmp_path):
    cfg = ReproConfig(
        dataset="synthetic-sbu",
        work=tmp_path / "units",
        epochs=2,
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
    # The units record how MRMP drew its rates; aggregating them as the other way is refused.
    assert results["mrmp_top_rate_every_step"] is True
    unit = json.loads((cfg.work / "mrmp" / "gaussian" / "fold0.json").read_text())
    assert unit["top_rate_every_step"] is True
    other = Reproduction(replace(cfg, top_rate_every_step=False), log=lambda _: None)
    with pytest.raises(ValueError, match="--top-rate-every-step"):
        other.aggregate(tmp_path / "other")
    # So do they their epochs: MRMP's own, apart from the dense network's.
    assert results["epochs"] == {"dense": 2, "mrmp": 3, "srmp": 1, "mp_finetune": 1}
    assert unit["epochs"] == 3
    longer = Reproduction(replace(cfg, mrmp_epochs=2), log=lambda _: None)
    with pytest.raises(ValueError, match="--mrmp-epochs 2"):
        longer.aggregate(tmp_path / "longer")
    longer = Reproduction(replace(cfg, srmp_epochs=2), log=lambda _: None)
    with pytest.raises(ValueError, match="--srmp-epochs 2"):
        longer.aggregate(tmp_path / "longer")


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

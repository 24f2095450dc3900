"""The reproduction's results file has the issue's shape, and its table and plots are written;
each unit records the settings that shaped it, and a unit of other settings is refused; over
several seeds each number is the mean over seeds of the fold means, with its spread."""

import json
import re
import statistics
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from lab.cli import app
from lab.config import Experiment
from lab.reproduce import Reproduction
from lab.tables import results_table
from tests.experiments import SYNTHETIC_TOML, synthetic_experiment
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
        # The error of the mean observed rate is at most the worst single unit's.
        mean = results["observed_rate"][prior]
        checked = [k for k in mean if 0.5 <= float(k) <= 0.98]
        expected = max(abs(mean[k] - float(k)) for k in checked)
        assert results["rate_error_of_mean"][prior] == pytest.approx(expected, abs=1e-5)
        assert (
            results["rate_error_of_mean"][prior] <= results["rate_error_max"][prior]["prior"] + 1e-4
        )
    table = (tmp_path / "out" / "synthetic-sbu.md").read_text()
    assert "| **0.98** |" in table and "| 0.93 (unseen) |" in table
    for plot in ("synthetic-sbu_accuracy.png", "synthetic-sbu_observed_rate.png"):
        assert (tmp_path / "out" / plot).stat().st_size > 1000
    assert results["epochs"] == {"dense": 2, "mrmp": 3, "srmp": 1, "mp_finetune": 1}
    # Each unit records the settings it was made with and their hash.
    unit = json.loads((work / "mrmp" / "gaussian" / "seed0" / "fold0.json").read_text())
    assert unit["settings"] == {
        "mrmp_epochs": 3,
        "rates_per_step": 4,
        "rate_jitter": True,
        "top_rate_every_step": True,
        "kl_weight": 1.0,
    }
    assert unit["settings_hash"] == exp.unit_hash("mrmp") != exp.unit_hash("srmp")
    dense = json.loads((work / "dense" / "seed0" / "fold0.json").read_text())
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
    with pytest.raises(
        ValueError, match=r"mrmp/gaussian/seed0/fold0\.json was made with mrmp\.epochs"
    ):
        other.run(("mrmp",))
    # Units also record the dataset's protocol (descriptor, augmentation, batch, filters): a
    # unit of another protocol is refused too, naming what differs.
    assert dense["protocol"] == exp.protocol.record() == results["protocol_settings"]
    assert results["protocol_settings"]["descriptor"]["chunks"] == 4
    batch = synthetic_experiment(protocol={"batch_size": 7})
    with pytest.raises(
        ValueError, match=r"dense/seed0/fold0\.json was made with protocol\.batch_size"
    ):
        Reproduction(batch, work, log=lambda _: None).aggregate(tmp_path / "other")
    # A unit that records no hash, or a hash of other settings, is refused too.
    path = work / "dense" / "seed0" / "fold0.json"
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
    with pytest.raises(ValueError, match=r"mrmp/gaussian/seed0/fold0\.json was made with"):
        other.best_prior()


def test_mrmp_priors_split_trains_only_those(tmp_path):
    exp = synthetic_experiment(mrmp={"epochs": 1})
    work = tmp_path / "units"
    Reproduction(exp, work, mrmp_priors=("uniform",), log=lambda _: None).run(("mrmp",))
    assert sorted(p.name for p in (work / "mrmp").iterdir()) == ["uniform"]


def seeded(seeds: tuple[int, ...], **sections: dict[str, Any]) -> Experiment:
    """The synthetic experiment, with `sections` changed, trained with `seeds`."""
    return synthetic_experiment(**sections).model_copy(update={"seeds": seeds})


def test_two_seeds_aggregate_to_the_mean_and_sample_std_over_seeds(tmp_path, monkeypatch):
    # MRMP units evaluated at the seen rates and two others only, to keep the test short.
    monkeypatch.setattr("lab.reproduce.RATE_GRID", (0.5, 0.93))
    exp = seeded(
        (0, 1),
        dense={"epochs": 1, "mp_finetune_epochs": 0},
        mrmp={"epochs": 1, "priors": ["gaussian"]},
    )
    assert exp.unit_hash("mrmp") == synthetic_experiment(mrmp={"epochs": 1}).unit_hash("mrmp")
    work = tmp_path / "units"
    repro = Reproduction(exp, work, srmp_rates=(0.5,), log=lambda _: None)
    repro.run()
    results = repro.aggregate(tmp_path / "out")

    def unit(name: str, seed: int) -> dict:
        return json.loads((work / name / f"seed{seed}" / "fold0.json").read_text())

    dense, mrmp = [unit("dense", s) for s in (0, 1)], [unit("mrmp/gaussian", s) for s in (0, 1)]
    srmp = [unit("srmp/gaussian/0.50", s) for s in (0, 1)]
    assert dense[0]["dense"] != dense[1]["dense"] or dense[0]["mp"] != dense[1]["mp"]
    for s, made in enumerate(dense):
        assert made["seed"] == s and made["deterministic"] is True
        assert made["threads"] == torch.get_num_threads() and made["torch"] == torch.__version__

    def stats(values: list[float], digits: int = 2) -> tuple[float, float]:
        return round(statistics.mean(values), digits), round(statistics.stdev(values), digits)

    spread = results["spread"]
    assert results["seeds"] == [0, 1]
    assert (results["dense"], spread["dense"]) == stats([u["dense"] for u in dense])
    assert (results["mp"]["0.90"], spread["mp"]["0.90"]) == stats([u["mp"]["0.90"] for u in dense])
    assert results["mp_ft"]["0.90"] is None and spread["mp_ft"]["0.90"] is None  # no fine-tuning
    assert (results["srmp"]["0.50"], spread["srmp"]["0.50"]) == stats([u["accuracy"] for u in srmp])
    assert list(results["srmp"]) == ["0.50"]  # the other rates have no units
    for mode, target in (("prior", "mrmp"), ("exact", "mrmp_exact")):
        for key in ("0.50", "0.93", "0.98"):
            accs = [u[mode][key]["accuracy"] for u in mrmp]
            assert (results[target]["gaussian"][key], spread[target]["gaussian"][key]) == stats(
                accs
            )
    observed = [u["prior"]["0.90"]["observed_rate"] for u in mrmp]
    assert results["observed_rate"]["gaussian"]["0.90"] == stats(observed, 4)[0]
    # The SRMP prior was chosen over both seeds, and is chosen again for other seeds.
    chosen = json.loads((work / "srmp_prior.json").read_text())
    assert chosen["seeds"] == [0, 1]
    assert Reproduction(synthetic_experiment(), work)._chosen_prior() is None
    table = (tmp_path / "out" / "synthetic-sbu.md").read_text()
    assert "over seeds 0, 1 " in table
    assert f"| **0.50** | {results['mp']['0.50']:.1f} ± {spread['mp']['0.50']:.1f} | - |" in table
    # One seed of the same units: the seed-0 numbers, no spread, the table of one seed.
    one = Reproduction(exp, work, seeds=(0,), log=lambda _: None)
    alone = one.aggregate(tmp_path / "one")
    assert alone["dense"] == round(dense[0]["dense"], 2) and "spread" not in alone
    assert "±" not in (tmp_path / "one" / "synthetic-sbu.md").read_text()
    # A unit recording another seed than its name's is refused.
    path = work / "dense" / "seed1" / "fold0.json"
    path.write_text(json.dumps({**dense[1], "seed": 0}))
    with pytest.raises(ValueError, match=r"seed1/fold0\.json records seed 0, not its name's"):
        repro.aggregate(tmp_path / "other")


@pytest.mark.parametrize("dataset", ["sbu", "fpha"])
def test_committed_table_is_the_one_its_results_make(dataset):
    """The table the README quotes is what the committed results JSON makes: mean ± sd over
    the config's seeds."""
    results_dir = Path(__file__).resolve().parents[1] / "docs" / "results"
    results = json.loads((results_dir / f"{dataset}.json").read_text())
    assert results["seeds"] == [0, 1, 2] and "spread" in results
    table = results_table(results)
    assert table == (results_dir / f"{dataset}.md").read_text() and " ± " in table


def test_seeds_are_distinct_and_selected_among_the_configs(tmp_path):
    raw = tomllib.loads(SYNTHETIC_TOML)
    assert Experiment.model_validate(raw).seeds == (0,)
    with pytest.raises(ValueError, match=r"seeds must differ; repeated: \[1\]"):
        Experiment.model_validate({**raw, "seeds": [0, 1, 1]})
    with pytest.raises(ValueError, match="at least 1 item"):
        Experiment.model_validate({**raw, "seeds": []})
    config = tmp_path / "synthetic.toml"
    config.write_text("seeds = [0, 1]\n" + SYNTHETIC_TOML)
    work = tmp_path / "u"
    base = ["reproduce", "--config", str(config), "--work", str(work)]
    result = CliRunner().invoke(app, [*base, "--seeds", "0,2"])
    assert result.exit_code == 2 and "seeds for synthetic-sbu are (0, 1)" in result.output
    assert not work.exists()


def test_srmp_and_mp_finetuning_train_with_the_recipe_the_file_sets(tmp_path, monkeypatch):
    trained: list[Any] = []
    monkeypatch.setattr(
        "lab.reproduce.fit", lambda data, model, fold, cfg, **kw: trained.append(cfg)
    )
    recipe = {"lr": 0.003, "lr_schedule": "cosine", "batch_size": 16, "temporal_crops": 2}
    exp = synthetic_experiment(
        srmp=recipe,
        dense={
            "mp_finetune_epochs": 1,
            "mp_finetune_lr": 0.002,
            "mp_finetune_lr_schedule": "cosine",
        },
    )
    assert exp.unit_hash("srmp") != synthetic_experiment().unit_hash("srmp")
    repro = Reproduction(exp, tmp_path, log=lambda _: None)
    repro._srmp("gaussian", 0.5, 0, 0)
    srmp = trained.pop()
    assert (srmp.method, srmp.rates, srmp.lr, srmp.lr_schedule) == ("srmp", (0.5,), 0.003, "cosine")
    assert (srmp.batch_size, srmp.temporal_crops) == (16, 2)
    repro._dense(0, 0)
    finetunes = trained[1:]
    assert len(finetunes) == len(PAPER_RATES)
    assert all((c.lr, c.lr_schedule, c.epochs) == (0.002, "cosine", 1) for c in finetunes)


def test_the_command_trains_on_one_thread_by_default_and_records_it(tmp_path):
    config = tmp_path / "synthetic.toml"
    config.write_text(SYNTHETIC_TOML.replace("mp_finetune_epochs = 1", "mp_finetune_epochs = 0"))
    work = tmp_path / "u"
    before = torch.get_num_threads()
    base = ["reproduce", "--config", str(config), "--work", str(work), "--stages", "dense"]
    for threads, extra in ((1, []), (2, ["--threads", "2"])):
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 0, result.output
        unit = work / "dense" / "seed0" / "fold0.json"
        assert json.loads(unit.read_text())["threads"] == threads
        unit.unlink()
        assert torch.get_num_threads() == before  # the caller's setting is restored

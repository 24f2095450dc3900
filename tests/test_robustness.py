"""`mrmp robustness`: each measured corruption removes what its name says, both models see the
same corrupted sequences, and the run writes its table, resumes and refuses units of other
settings; the config's missing-detection option trains the reproduction's MRMP with views."""

import json
from pathlib import Path

import numpy as np
import pytest

from lab.reproduce import Reproduction
from lab.robustness import Robustness, corrupted_descriptors, corruptions
from mrmp.skeleton import FPHA_LAYOUT, SBU_LAYOUT, DescriptorConfig
from tests.experiments import synthetic_experiment
from training.datasets import make_synthetic


def _lost(layout, name, seq):
    by_name = {c.name: c for c in corruptions(layout)}
    out = by_name[name].apply(seq, np.random.default_rng(0))
    return (out == 0).all(axis=-1)  # (T, J) detections zeroed


def test_each_corruption_removes_what_its_name_says():
    seq = make_synthetic(SBU_LAYOUT, num_classes=1, per_class=1, seed=0).sequences[0][:30]
    t = len(seq)
    names = SBU_LAYOUT.joint_names
    assert not _lost(SBU_LAYOUT, "clean", seq).any()
    third = _lost(SBU_LAYOUT, "every 3rd frame dropped (1/3)", seq)
    assert np.flatnonzero(third.all(axis=1)).tolist() == list(range(2, t, 3))
    assert third.sum() == t // 3 * 30
    half = _lost(SBU_LAYOUT, "every 2nd frame dropped (1/2)", seq)
    assert np.flatnonzero(half.all(axis=1)).tolist() == list(range(1, t, 2))
    for name, fraction in (("random 1/3", 1 / 3), ("random 1/2", 1 / 2)):
        lost = _lost(SBU_LAYOUT, f"{name} of frames dropped", seq)
        assert lost.all(axis=1).sum() == round(t * fraction) and lost.sum() % 30 == 0
    single = _lost(SBU_LAYOUT, "one frame left (the middle one)", seq)
    assert np.flatnonzero(~single.all(axis=1)).tolist() == [t // 2]
    b = _lost(SBU_LAYOUT, "person B absent", seq)
    assert b[:, 15:].all() and not b[:, :15].any()
    a = _lost(SBU_LAYOUT, "person A absent", seq)
    assert a[:, :15].all() and not a[:, 15:].any()
    hands = _lost(SBU_LAYOUT, "hand joints absent (every person's)", seq)
    assert [names[j] for j in np.flatnonzero(hands.all(axis=0))] == [
        "A_LEFT_HAND",
        "A_RIGHT_HAND",
        "B_LEFT_HAND",
        "B_RIGHT_HAND",
    ]
    assert hands.sum() == 4 * t
    assert _lost(SBU_LAYOUT, "random 20% of detections lost", seq).sum() == round(0.2 * t * 30)


def test_a_one_person_layout_has_no_person_corruptions_and_loses_its_fingertips():
    names = [c.name for c in corruptions(FPHA_LAYOUT)]
    assert "person B absent" not in names and "hand joints absent (every person's)" not in names
    seq = make_synthetic(FPHA_LAYOUT, num_classes=1, per_class=1, seed=0).sequences[0]
    tips = _lost(FPHA_LAYOUT, "fingertips absent", seq)
    assert [FPHA_LAYOUT.joint_names[j] for j in np.flatnonzero(tips.all(axis=0))] == [
        f"{f}TIP" for f in "TIMRP"
    ]


def test_both_models_see_the_same_corrupted_sequences():
    seqs = make_synthetic(SBU_LAYOUT, num_classes=2, per_class=2, seed=0).sequences
    cfg = DescriptorConfig()
    once = corrupted_descriptors(seqs, SBU_LAYOUT, cfg)
    again = corrupted_descriptors(seqs, SBU_LAYOUT, cfg)
    assert list(once) == [c.name for c in corruptions(SBU_LAYOUT)]
    for name, x in once.items():
        assert x.shape == (4, 30, cfg.feature_dim())
        assert np.array_equal(x.numpy(), again[name].numpy()), name
    assert not np.array_equal(once["clean"].numpy(), once["person B absent"].numpy())


def test_run_writes_the_table_resumes_and_refuses_other_settings(tmp_path):
    exp = synthetic_experiment()
    logged: list[str] = []

    def robustness(epochs: int) -> Robustness:
        return Robustness(
            exp,
            tmp_path / "work",
            models={"protocol": 0, "missing views": 2},
            epochs=epochs,
            prior="gaussian",
            rates=(0.5, 0.9),
            log=logged.append,
        )

    results = robustness(2).run((0,), tmp_path / "out", "mrmp robustness --config x.toml")
    assert len(logged) == 2  # one model trained per (model, fold)
    assert results["epochs"] == 2 and results["folds"] == [0]
    assert results["models"] == {
        "protocol": {"missing_views": 0},
        "missing views": {"missing_views": 2},
    }
    names = [c.name for c in corruptions(SBU_LAYOUT)]
    for model in ("protocol", "missing views"):
        assert list(results["accuracy"][model]) == names
        for row in results["accuracy"][model].values():
            assert set(row) == {"0.50", "0.90"}
            assert all(0 <= v <= 100 for v in row.values())
    assert json.loads((tmp_path / "out" / "robustness_synthetic-sbu.json").read_text()) == results
    table = (tmp_path / "out" / "robustness_synthetic-sbu.md").read_text()
    assert "2 epochs" in table and "| person B absent |" in table
    assert table.count("\n| ") == len(names) + 1  # the header and a row per corruption
    unit = json.loads((tmp_path / "work" / "missing-views" / "fold0.json").read_text())
    assert unit["settings"]["missing_views"] == 2 and unit["settings"]["mrmp"]["mrmp_epochs"] == 2
    # Resumed: nothing trained again, the same results.
    assert robustness(2).run((0,), tmp_path / "out", "mrmp robustness --config x.toml") == results
    assert len(logged) == 2
    with pytest.raises(ValueError, match=r"fold0\.json was made with other settings"):
        robustness(3).run((0,), tmp_path / "out", "")


@pytest.mark.parametrize(
    ("kind", "other", "config"),
    [
        ("mrmp", "srmp", lambda repro: repro.mrmp_config("gaussian")),
        ("srmp", "mrmp", lambda repro: repro.srmp_config("gaussian", 0.5)),
    ],
)
def test_missing_views_off_keeps_the_settings_hash_and_on_reaches_training(kind, other, config):
    base = synthetic_experiment()
    off = synthetic_experiment(**{kind: {"missing_views": 0}})
    assert getattr(off, kind).missing_views is None and off.unit_hash(kind) == base.unit_hash(kind)
    on = synthetic_experiment(**{kind: {"missing_views": 4}})
    assert on.unit_settings(kind)[f"{kind}_missing_views"] == 4
    assert on.unit_hash(kind) != base.unit_hash(kind)
    assert on.unit_hash(other) == base.unit_hash(other)
    assert config(Reproduction(on, None)).missing_views == 4
    assert config(Reproduction(base, None)).missing_views == 0


def test_the_readme_and_docs_quote_the_committed_robustness_table_and_command():
    root = Path(__file__).resolve().parents[1]
    for results in sorted((root / "docs" / "results").glob("robustness_*.json")):
        table = results.with_suffix(".md").read_text().strip()
        command = json.loads(results.read_text())["command"]
        for doc in ("README.md", "docs/robustness.md"):
            text = (root / doc).read_text()
            assert table in text, f"{doc} does not quote {results.with_suffix('.md').name}"
            assert f"`{command}`" in text, f"{doc} does not show {results.name}'s command"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--folds", "7"], "folds for sbu are (0, 1, 2, 3, 4)"),
        (["--missing-views", "0"], "epochs and missing-views must be >= 1"),
        (["--prior", "cauchy"], "prior 'cauchy' is not among"),
    ],
)
def test_the_command_refuses_bad_options_before_training(tmp_path, options, problem):
    from typer.testing import CliRunner

    from lab.cli import app

    config = Path(__file__).resolve().parents[1] / "configs" / "sbu.toml"
    args = ["robustness", "--config", str(config), "--out", str(tmp_path), *options]
    result = CliRunner().invoke(app, [*args, "--work", str(tmp_path / "work")])
    assert result.exit_code == 2
    assert problem in result.output
    assert not (tmp_path / "work").exists()

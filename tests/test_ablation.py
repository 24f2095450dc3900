"""`mrmp ablate`: every variant x seed x fold is run once, summarized, and resumed."""

import json
from pathlib import Path

import pytest

from lab import ablation

VARIANTS = {"synthetic-sbu": {"rotated": {"augment": {"rotate_degrees": 30.0}}, "plain": {}}}


def test_ablate_runs_summarizes_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "VARIANTS", VARIANTS)
    out = tmp_path / "ablation.json"
    logged: list[str] = []
    results = ablation.ablate("synthetic-sbu", out, (0, 1), 1, "cmd", log=logged.append)
    assert len(results["runs"]) == 4 and len(logged) == 4
    for name in ("rotated", "plain"):
        v = results["variants"][name]
        runs = [results["runs"][f"{name} | seed {s} | fold 0"] for s in (0, 1)]
        assert v["per_seed"] == runs and v["mean"] == pytest.approx(sum(runs) / 2)
    assert json.loads(out.read_text()) == results
    # A second call finds every run done; another command's file is refused.
    again = ablation.ablate("synthetic-sbu", out, (0, 1), 1, "cmd", log=logged.append)
    assert len(logged) == 4 and again["variants"] == results["variants"]
    # Runs made under other settings (epochs, or a variant's resolved settings) are refused.
    with pytest.raises(ablation.AblationError, match="other settings"):
        ablation.ablate("synthetic-sbu", out, (0,), 2, "cmd", log=logged.append)
    changed = {"synthetic-sbu": {**VARIANTS["synthetic-sbu"], "plain": {"batch_size": 7}}}
    monkeypatch.setattr(ablation, "VARIANTS", changed)
    with pytest.raises(ablation.AblationError, match="other settings"):
        ablation.ablate("synthetic-sbu", out, (0, 1), 1, "cmd", log=logged.append)
    table = ablation.ablation_table(results)
    assert table.count("\n") == 4 and "| rotated |" in table


def test_a_new_variant_keeps_the_others_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "VARIANTS", VARIANTS)
    out = tmp_path / "ablation.json"
    logged: list[str] = []
    before = ablation.ablate("synthetic-sbu", out, (0,), 1, "cmd", log=logged.append)
    longer = {"plain": {}, "longer": {"train": {"epochs": 2, "lr_schedule": "cosine"}}}
    monkeypatch.setattr(ablation, "VARIANTS", {"synthetic-sbu": longer})
    after = ablation.ablate("synthetic-sbu", out, (0,), 1, "cmd", log=logged.append)
    assert logged[2:] == ["[ablate synthetic-sbu] longer | seed 0 | fold 0"]
    assert after["runs"]["plain | seed 0 | fold 0"] == before["runs"]["plain | seed 0 | fold 0"]
    assert "rotated | seed 0 | fold 0" not in after["runs"]  # no longer ablated
    assert after["settings"]["longer"]["train"] == {"epochs": 2, "lr_schedule": "cosine"}
    assert "train" not in after["settings"]["plain"]


def test_ablate_unknown_dataset(tmp_path):
    with pytest.raises(ablation.AblationError, match="no ablation"):
        ablation.ablate("nope", tmp_path / "a.json", (0,), 1, "cmd")


@pytest.mark.parametrize("dataset", ["sbu", "fpha"])
def test_the_ablation_has_the_dense_recipe_of_the_committed_results(dataset):
    """One row of the ablation is the protocol trained with the dense recipe that
    `mrmp reproduce` ran (its epochs, learning rate, schedule, crops and batch)."""
    path = Path(__file__).parents[1] / "docs" / "results" / f"{dataset}.json"
    results = json.loads(path.read_text())
    used = {
        "batch_size": results["dense_batch_size"],
        "train": {
            "epochs": results["epochs"]["dense"],
            "lr": results["dense_lr"],
            "lr_schedule": results["dense_lr_schedule"],
            "temporal_crops": results["dense_temporal_crops"],
        },
    }
    rows = [ablation.resolve(dataset, o) for o in ablation.VARIANTS[dataset].values()]
    assert ablation.resolve(dataset, used) in rows


@pytest.mark.parametrize("dataset", ["sbu", "fpha"])
def test_the_committed_ablation_is_of_the_variants_in_code(dataset):
    """`mrmp ablate` would reuse every committed run: each variant's resolved settings are
    those the file records."""
    path = Path(__file__).parents[1] / "docs" / "results" / f"ablation_{dataset}.json"
    held = json.loads(path.read_text())["settings"]
    variants = ablation.VARIANTS[dataset]
    resolved = {name: ablation.resolve(dataset, o) for name, o in variants.items()}
    assert json.loads(json.dumps(resolved)) == held

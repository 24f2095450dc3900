"""`mrmp ablate`: every variant x seed x fold is run once, summarized, and resumed."""

import json
from pathlib import Path

import pytest

from lab import ablation
from lab.config import CONFIGS, load_experiment
from lab.tables import ablation_table
from tests.experiments import synthetic_experiment

ROTATED = {"name": "rotated", "augment": {"rotate_degrees": 30.0}}


def experiment(*variants: dict, seeds: tuple[int, ...] = (0, 1), epochs: int = 1):
    """The synthetic experiment with these ablation variants."""
    return synthetic_experiment(
        ablation={"epochs": epochs, "seeds": list(seeds), "variants": list(variants)}
    )


def test_ablate_runs_summarizes_and_resumes(tmp_path):
    exp = experiment(ROTATED, {"name": "plain"})
    out = tmp_path / "ablation.json"
    logged: list[str] = []
    results = ablation.ablate(exp, out, "cmd", log=logged.append)
    assert len(results["runs"]) == 4 and len(logged) == 4
    for name in ("rotated", "plain"):
        v = results["variants"][name]
        runs = [results["runs"][f"{name} | seed {s} | fold 0"] for s in (0, 1)]
        assert v["per_seed"] == runs and v["mean"] == pytest.approx(sum(runs) / 2)
    assert json.loads(out.read_text()) == results
    # A second call finds every run done.
    again = ablation.ablate(exp, out, "cmd", log=logged.append)
    assert len(logged) == 4 and again["variants"] == results["variants"]
    # Runs made under other settings (epochs, or a variant's resolved settings) are refused.
    with pytest.raises(ablation.AblationError, match="other settings"):
        ablation.ablate(experiment(ROTATED, seeds=(0,), epochs=2), out, "cmd")
    changed = experiment(ROTATED, {"name": "plain", "batch_size": 7})
    with pytest.raises(ablation.AblationError, match=r"other settings \(plain;"):
        ablation.ablate(changed, out, "cmd")
    table = ablation_table(results)
    assert table.count("\n") == 4 and "| rotated |" in table


def test_a_new_variant_keeps_the_others_runs(tmp_path):
    out = tmp_path / "ablation.json"
    logged: list[str] = []
    before = ablation.ablate(experiment(ROTATED, {"name": "plain"}, seeds=(0,)), out, "cmd")
    longer = {"name": "longer", "train": {"epochs": 2, "lr_schedule": "cosine"}}
    after = ablation.ablate(
        experiment({"name": "plain"}, longer, seeds=(0,)), out, "cmd", log=logged.append
    )
    assert logged == ["[ablate synthetic-sbu] longer | seed 0 | fold 0"]
    assert after["runs"]["plain | seed 0 | fold 0"] == before["runs"]["plain | seed 0 | fold 0"]
    assert "rotated | seed 0 | fold 0" not in after["runs"]  # no longer ablated
    assert after["settings"]["longer"]["train"] == {"epochs": 2, "lr_schedule": "cosine"}
    assert "train" not in after["settings"]["plain"]


def test_ablate_without_variants(tmp_path):
    with pytest.raises(ablation.AblationError, match=r"has no \[ablation\] table"):
        ablation.ablate(synthetic_experiment(), tmp_path / "a.json", "cmd")


@pytest.mark.parametrize("dataset", ["sbu", "fpha"])
def test_the_ablation_has_the_dense_recipe_of_the_committed_results(dataset):
    """One row of the ablation is the protocol trained with the dense recipe that
    `mrmp reproduce` ran (its epochs, learning rate, schedule, crops and batch)."""
    path = Path(__file__).parents[1] / "docs" / "results" / f"{dataset}.json"
    results = json.loads(path.read_text())
    exp = load_experiment(CONFIGS / f"{dataset}.toml")
    used = {
        "descriptor": exp.protocol.descriptor.to_dict(),
        "augment": exp.protocol.augment.to_dict(),
        "batch_size": results["dense_batch_size"],
        "train": {
            "epochs": results["epochs"]["dense"],
            "lr": results["dense_lr"],
            "lr_schedule": results["dense_lr_schedule"],
            "temporal_crops": results["dense_temporal_crops"],
        },
    }
    rows = [v.resolve(exp.protocol) for v in exp.ablation.variants]
    assert json.loads(json.dumps(used)) in rows


@pytest.mark.parametrize("dataset", ["sbu", "fpha"])
def test_the_committed_ablation_is_of_the_variants_in_the_config(dataset):
    """`mrmp ablate` would reuse every committed run: the file's epochs, seeds and each
    variant's resolved settings are the config's."""
    path = Path(__file__).parents[1] / "docs" / "results" / f"ablation_{dataset}.json"
    held = json.loads(path.read_text())
    exp = load_experiment(CONFIGS / f"{dataset}.toml")
    resolved = {v.name: v.resolve(exp.protocol) for v in exp.ablation.variants}
    assert list(resolved.items()) == list(held["settings"].items())
    assert held["epochs"] == exp.ablation.epochs
    seeds = {int(key.split(" | seed ")[1].split(" |")[0]) for key in held["runs"]}
    assert seeds == set(exp.ablation.seeds)

"""Dense accuracy of the protocol's own choices, added one after another.

The descriptor and augmentation options a dataset's protocol uses are ours, not the author's
(docs/method.md). This is the evidence behind them, by one command (`mrmp ablate`): each
variant overrides part of the protocol, is trained dense on the protocol's folds for a few
seeds, and is reported as the mean over folds per seed. Each run is saved as it ends, so an
interrupted ablation resumes; the file records every variant's resolved settings, and runs made
under other settings are refused rather than reused.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab.experiment import (
    Data,
    ModelSpec,
    build_model,
    fit,
    load_data,
    protocol,
    train_config,
)
from lab.reproduce import write_json
from mrmp.skeleton import DescriptorConfig
from training.evaluate import accuracy

# The dense network's recipe in `mrmp reproduce` (its --epochs and --dense-* options), in two
# steps on top of the protocol: TrainConfig overrides, epochs included. SBU's also trains in
# batches of 64 (`--dense-batch-size`, FPHA's batch): its last variant below.
_COSINE = {"epochs": 600, "lr": 3e-3, "lr_schedule": "cosine"}
_CROPS = {"train": {**_COSINE, "temporal_crops": 8}}
DENSE_RECIPE: dict[str, dict[str, Any]] = {
    "+ cosine lr 3e-3, 600 epochs": {"train": _COSINE},
    "+ 8 temporal crops (dense recipe)": _CROPS,
}
# Per dataset: variant name -> overrides of the protocol's descriptor, augmentation and batch,
# and of the training ("train"). Cumulative, from the author's settings to the protocol, then
# the dense recipe; FPHA's last variant leaves one choice out of the protocol, so both of its
# additions are measured alone and together. SBU's protocol describes each person about their
# own torso, added last: the rows before it leave that block out.
_NO_PERSON_ROOTS = {"root_joint": None}
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "sbu": {
        "files' coordinates, no augmentation": {
            "descriptor": {**_NO_PERSON_ROOTS, "axis_scale": None},
            "augment": {"swap_persons": False},
        },
        "+ axis_scale": {"descriptor": _NO_PERSON_ROOTS, "augment": {"swap_persons": False}},
        "+ person swap": {"descriptor": _NO_PERSON_ROOTS},
        **{
            name: {"descriptor": _NO_PERSON_ROOTS, **overrides}
            for name, overrides in DENSE_RECIPE.items()
        },
        "+ each person about its own torso (protocol)": _CROPS,
        "+ batch 64 (SBU's dense recipe)": {"batch_size": 64, **_CROPS},
    },
    "fpha": {
        "author's (4 chunks, batch 600), no augmentation": {
            "descriptor": {"chunks": 4, "velocity": False, "root_joint": None, "local_frame": None},
            "augment": {"rotate_degrees": 0.0},
            "batch_size": 600,
        },
        "8 chunks, wrist-relative, batch 64": {
            "descriptor": {"velocity": False, "local_frame": None},
            "augment": {"rotate_degrees": 0.0},
        },
        "+ palm frame": {"descriptor": {"velocity": False}, "augment": {"rotate_degrees": 0.0}},
        "+ rotations": {"descriptor": {"velocity": False}},
        "+ velocities (protocol)": {},
        **DENSE_RECIPE,
        "protocol without the palm frame": {"descriptor": {"local_frame": None}},
    },
}


class AblationError(ValueError):
    """An ablation that cannot run: unknown dataset, or a results file of other settings."""


def resolve(dataset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A variant's full settings: the protocol's, with its overrides applied."""
    proto = protocol(dataset)
    descriptor = replace(proto["descriptor"], **overrides.get("descriptor", {}))
    augment = replace(proto["augment"], **overrides.get("augment", {}))
    settings = {
        "descriptor": descriptor.to_dict(),
        "augment": augment.to_dict(),
        "batch_size": overrides.get("batch_size", proto["batch_size"]),
    }
    if "train" in overrides:  # absent otherwise, so variants without one keep their settings
        settings["train"] = dict(overrides["train"])
    return settings


def run_variant(data: Data, settings: dict[str, Any], fold: int, seed: int, epochs: int) -> float:
    """Held-out dense accuracy of one variant (resolved settings, `data` described with its
    descriptor) on one fold."""
    _, _, xte, yte = data.split(fold)
    model = build_model(data, ModelSpec(seed=seed))
    recipe = {"epochs": epochs, **settings.get("train", {})}
    cfg = train_config(
        data,
        method="dense",
        seed=seed,
        augment=settings["augment"],
        batch_size=settings["batch_size"],
        **recipe,
    )
    fit(data, model, fold, cfg, show_progress=False)
    return accuracy(model, xte, yte)


def ablate(
    dataset: str,
    out: Path,
    seeds: tuple[int, ...],
    epochs: int,
    command: str,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every variant x fold x seed (skipping those `out` already holds); returns the results."""
    if dataset not in VARIANTS:
        raise AblationError(f"no ablation for {dataset!r}; known: {', '.join(VARIANTS)}")
    # As JSON holds them (tuples become lists), to compare with a file's.
    settings = json.loads(
        json.dumps({name: resolve(dataset, o) for name, o in VARIANTS[dataset].items()})
    )
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    # A variant added since keeps the others' runs; one whose settings changed is refused.
    held = results.get("settings", {})
    changed = [name for name in settings if name in held and held[name] != settings[name]]
    if results and (results.get("epochs") != epochs or changed):
        what = ", ".join(changed) if changed else f"{results.get('epochs')} epochs"
        raise AblationError(
            f"{out} holds runs of other settings ({what}; command {results.get('command')!r}): "
            "move it away to start afresh"
        )
    results.pop("variants", None)  # the summary is rebuilt from the runs below
    # Runs of variants no longer ablated go with them.
    runs = {k: v for k, v in results.get("runs", {}).items() if k.split(" | ")[0] in settings}
    results.update(dataset=dataset, epochs=epochs, command=command, settings=settings, runs=runs)
    folds = protocol(dataset)["test_folds"]
    for name in VARIANTS[dataset]:
        todo = [
            (seed, fold, f"{name} | seed {seed} | fold {fold}") for seed in seeds for fold in folds
        ]
        todo = [t for t in todo if t[2] not in runs]
        if not todo:
            continue
        # Read and describe the dataset once per variant, not once per run.
        descriptor = DescriptorConfig.from_dict(settings[name]["descriptor"])
        data = load_data(dataset, descriptor, data_dir)
        for seed, fold, key in todo:
            log(f"[ablate {dataset}] {key}")
            runs[key] = run_variant(data, settings[name], fold, seed, epochs)
            write_json(out, results)
    results["variants"] = summarize(dataset, runs, seeds)
    write_json(out, results)
    return results


def summarize(dataset: str, runs: dict[str, float], seeds: tuple[int, ...]) -> dict[str, Any]:
    """Per variant: the mean over folds for each seed, and the mean of those."""
    folds = protocol(dataset)["test_folds"]
    summary = {}
    for name in VARIANTS[dataset]:
        per_seed = [
            statistics.mean(runs[f"{name} | seed {s} | fold {f}"] for f in folds) for s in seeds
        ]
        summary[name] = {"per_seed": per_seed, "mean": statistics.mean(per_seed)}
    return summary


def ablation_table(results: dict[str, Any]) -> str:
    lines = ["| variant | mean | per seed |", "|---|---|---|"]
    for name, v in results["variants"].items():
        seeds = ", ".join(f"{a:.1f}" for a in v["per_seed"])
        lines.append(f"| {name} | {v['mean']:.1f} | {seeds} |")
    return "\n".join(lines) + "\n"

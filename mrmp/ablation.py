"""Dense accuracy of the protocol's own choices, switched off one at a time.

The descriptor and augmentation options a dataset's protocol uses are ours, not the author's
(docs/method.md). This is the evidence behind them, by one command (`mrmp ablate`): each
variant overrides part of the protocol, is trained dense on the protocol's folds for a few
seeds, and is reported as the mean over folds per seed. Each run is saved as it ends, so an
interrupted ablation resumes.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mrmp.augment import AugmentConfig
from mrmp.evaluate import accuracy
from mrmp.experiment import ModelSpec, build_model, fit, load_data, protocol, train_config
from mrmp.skeleton import DescriptorConfig

# Per dataset: variant name -> overrides of the protocol's descriptor, augmentation and batch.
# The last variant of each is the protocol itself.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "sbu": {
        "files' coordinates, no augmentation": {
            "descriptor": {"axis_scale": None},
            "augment": {"swap_persons": False},
        },
        "+ axis_scale": {"augment": {"swap_persons": False}},
        "+ person swap (protocol)": {},
    },
    "fpha": {
        "author's (4 chunks, batch 600), no augmentation": {
            "descriptor": {"chunks": 4, "root_joint": None, "local_frame": None},
            "augment": {"rotate_degrees": 0.0},
            "batch_size": 600,
        },
        "8 chunks, wrist-relative, batch 64": {
            "descriptor": {"local_frame": None},
            "augment": {"rotate_degrees": 0.0},
        },
        "+ palm frame": {"augment": {"rotate_degrees": 0.0}},
        "+ rotations (protocol)": {},
    },
}


def run_variant(
    dataset: str,
    overrides: dict[str, Any],
    fold: int,
    seed: int,
    epochs: int,
    data_dir: str | None = None,
) -> float:
    """Held-out dense accuracy of one variant on one fold."""
    proto = protocol(dataset)
    base = proto.get("descriptor", DescriptorConfig())
    descriptor = replace(base, **overrides.get("descriptor", {}))
    augment = replace(proto.get("augment", AugmentConfig()), **overrides.get("augment", {}))
    data = load_data(dataset, descriptor, data_dir)
    xtr, ytr, xte, yte = data.split(fold)
    model = build_model(data, ModelSpec(seed=seed))
    cfg = train_config(
        data,
        method="dense",
        epochs=epochs,
        seed=seed,
        augment=augment.to_dict(),
        batch_size=overrides.get("batch_size", proto["batch_size"]),
    )
    fit(data, model, xtr, ytr, cfg, show_progress=False)
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
        raise ValueError(f"no ablation for {dataset!r}; known: {', '.join(VARIANTS)}")
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    if results and (results.get("epochs"), results.get("command")) != (epochs, command):
        raise ValueError(f"{out} holds runs of another command: {results.get('command')!r}")
    results.update(dataset=dataset, epochs=epochs, command=command)
    runs: dict[str, float] = results.setdefault("runs", {})
    for name, overrides in VARIANTS[dataset].items():
        for seed in seeds:
            for fold in protocol(dataset)["test_folds"]:
                key = f"{name} | seed {seed} | fold {fold}"
                if key in runs:
                    continue
                log(f"[ablate {dataset}] {key}")
                runs[key] = run_variant(dataset, overrides, fold, seed, epochs, data_dir)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=1) + "\n")
    results["variants"] = summarize(dataset, runs, seeds)
    out.write_text(json.dumps(results, indent=1) + "\n")
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

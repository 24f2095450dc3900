"""Dense accuracy of the protocol's own choices, added one after another.

The descriptor and augmentation options a dataset's protocol uses are ours, not the author's
(docs/method.md). This is the evidence behind them, by one command (`mrmp ablate`): each
variant (`[[ablation.variants]]` in configs/<dataset>.toml) overrides part of the protocol, is
trained dense on the protocol's folds for a few seeds, and is reported as the mean over folds
per seed. Each run is saved as it ends, so an interrupted ablation resumes; the file records
every variant's resolved settings, and runs made under other settings are refused rather than
reused.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.config import Experiment
from lab.experiment import Data, ModelSpec, build_model, fit, load_data, train_config
from lab.reproduce import write_json
from mrmp.skeleton import DescriptorConfig
from training.evaluate import accuracy


class AblationError(ValueError):
    """An ablation that cannot run: no variants in the config, or a results file of other
    settings."""


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
    experiment: Experiment,
    out: Path,
    command: str,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every variant x fold x seed of the experiment's ablation (skipping those `out` already
    holds); returns the results."""
    ablation = experiment.ablation
    if ablation is None:
        raise AblationError(f"{experiment.source} has no [ablation] table")
    dataset, epochs, proto = experiment.dataset, ablation.epochs, experiment.protocol
    settings = {v.name: v.resolve(proto) for v in ablation.variants}
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
    for name, resolved in settings.items():
        todo = [
            (seed, fold, f"{name} | seed {seed} | fold {fold}")
            for seed in ablation.seeds
            for fold in proto.test_folds
        ]
        todo = [t for t in todo if t[2] not in runs]
        if not todo:
            continue
        # Read and describe the dataset once per variant, not once per run.
        descriptor = DescriptorConfig.from_dict(resolved["descriptor"])
        data = load_data(dataset, descriptor, data_dir, proto)
        for seed, fold, key in todo:
            log(f"[ablate {dataset}] {key}")
            runs[key] = run_variant(data, resolved, fold, seed, epochs)
            write_json(out, results)
    results["variants"] = summarize(settings, runs, ablation.seeds, proto.test_folds)
    write_json(out, results)
    return results


def summarize(
    variants: dict[str, Any],
    runs: dict[str, float],
    seeds: tuple[int, ...],
    folds: tuple[int, ...],
) -> dict[str, Any]:
    """Per variant: the mean over folds for each seed, and the mean of those."""
    summary = {}
    for name in variants:
        per_seed = [
            statistics.mean(runs[f"{name} | seed {s} | fold {f}"] for f in folds) for s in seeds
        ]
        summary[name] = {"per_seed": per_seed, "mean": statistics.mean(per_seed)}
    return summary

"""The shipped default model: MRMP with the reproduction's best prior, trained on all of a
dataset, its manifest carrying the reproduction's cross-validated table per rate.

A model trained on every sample has no held-out data of its own; the table it carries is the
mean over folds of the MRMP models trained with the same settings on each fold's training
part (the reproduction's units), which is what a user can expect of it on new subjects.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from lab.experiment import ModelSpec, build_model, fit, manifest_for
from lab.reproduce import SEED, Reproduction
from mrmp.manifest import Manifest
from mrmp.rates import MODES
from mrmp.store import save_model


def cross_validated_table(repro: Reproduction, prior: str) -> dict[str, Any]:
    """Fold means of the MRMP units of `prior`: accuracy and observed rate, both modes."""
    folds = repro.proto.test_folds
    runs = []
    for f in folds:
        unit = repro.work / f"mrmp/{prior}/fold{f}.json"
        if not unit.is_file():
            raise FileNotFoundError(f"{unit} is missing: run `mrmp reproduce` first")
        runs.append(repro.load_unit(f"mrmp/{prior}/fold{f}"))
        repro.check_unit(f"mrmp/{prior}/fold{f}", runs[-1])
    table = {
        mode: {
            key: {
                field: round(statistics.mean(u[mode][key][field] for u in runs), 4)
                for field in ("accuracy", "observed_rate")
            }
            for key in runs[0][mode]
        }
        for mode in MODES
    }
    samples = len(repro.data.y)
    return {
        "protocol": f"{repro.proto.description}; models trained with the same settings on each "
        f"fold's training part (reproduction units in {repro.work})",
        "samples": samples,
        "folds": list(folds),
        "rates": table,
    }


def release(repro: Reproduction, out: Path, *, name: str, command: str) -> Manifest:
    """Train the shipped model on all of the dataset and write it to `out`."""
    missing = [
        f"mrmp/{p}/fold{f}"
        for p in repro.exp.mrmp.priors
        for f in repro.proto.test_folds
        if not (repro.work / f"mrmp/{p}/fold{f}.json").is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"reproduction units missing in {repro.work}: {', '.join(missing)}; "
            "run `mrmp reproduce` first"
        )
    prior = repro.best_prior()
    evaluation = cross_validated_table(repro, prior)
    data = repro.data
    model = build_model(data, ModelSpec(prior=prior, seed=SEED))
    tc = repro.mrmp_config(prior)
    fit(data, model, None, tc, desc=f"release {prior}")
    manifest = manifest_for(data, model, tc, name=name, command=command, evaluation=evaluation)
    return save_model(out, model, manifest)

"""The model to ship: MRMP trained on all of a dataset, its manifest carrying what it can be
expected to do on new data. For a built-in dataset (the shipped default model) that is the
reproduction's cross-validated table with its best prior; for a dataset folder, the table of a
model trained with the same settings without the held-out fold.

A model trained on every sample has no held-out data of its own; the table it carries is the
mean over the reproduction's seeds and folds of the MRMP models trained with the same settings
on each fold's training part (the reproduction's units), which is what a user can expect of it
on new subjects; the model itself is trained with seed 0.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.config import MrmpSettings
from lab.experiment import (
    Data,
    ModelSpec,
    build_model,
    evaluation_table,
    fit,
    manifest_for,
    service_rates,
    train_config,
)
from lab.model_report import report_rates, write_model_report
from lab.reproduce import SEED, Reproduction, mrmp_config, mrmp_unit, over_seeds
from mrmp.manifest import Manifest
from mrmp.rates import MODES
from mrmp.store import save_model


def cross_validated_table(repro: Reproduction, prior: str) -> dict[str, Any]:
    """The MRMP units of `prior`, of every seed and fold of `repro`: per mode and rate the mean
    accuracy and observed rate over seeds and folds and, with two or more seeds,
    "accuracy_std", the sample standard deviation over seeds of the fold-mean accuracies
    (FileNotFoundError for a missing unit, ValueError for one of other settings)."""
    per_seed = repro.units_of(lambda s, f: mrmp_unit(prior, s, f))
    if per_seed is None:
        raise FileNotFoundError(
            f"MRMP units of {prior} missing in {repro.work}: run `mrmp reproduce` first"
        )

    def row(mode: str, key: str) -> dict[str, float]:
        accuracy, sd = over_seeds(
            [[u[mode][key]["accuracy"] for u in runs] for runs in per_seed], 4
        )
        observed, _ = over_seeds(
            [[u[mode][key]["observed_rate"] for u in runs] for runs in per_seed], 4
        )
        out = {"accuracy": accuracy, "observed_rate": observed}
        if sd is not None:
            out["accuracy_std"] = sd
        return out

    table = {mode: {key: row(mode, key) for key in per_seed[0][0][mode]} for mode in MODES}
    return {
        "protocol": f"{repro.proto.description}; models trained with the same settings on each "
        f"fold's training part, seeds {', '.join(map(str, repro.seeds))} (reproduction units "
        f"in {repro.work})",
        "samples": len(repro.data.y),
        "folds": list(repro.folds),
        "rates": table,
    }


def release(repro: Reproduction, out: Path, *, name: str, command: str) -> Manifest:
    """Train the shipped model (seed 0) on all of the dataset and write it to `out`, carrying
    the cross-validated table of `repro`'s seeds and folds."""
    missing = [
        mrmp_unit(p, s, f)
        for p in repro.exp.mrmp.priors
        for s in repro.seeds
        for f in repro.folds
        if not (repro.work / f"{mrmp_unit(p, s, f)}.json").is_file()
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


def release_folder(
    data: Data,
    out: Path,
    *,
    name: str,
    command: str,
    prior: str,
    test_fold: int | None,
    epochs: int | None = None,
    settings: MrmpSettings | None = None,
    log: Callable[[str], None] = print,
) -> Manifest:
    """MRMP on a dataset folder's data: trained without `test_fold` and evaluated on it (the
    table, and the report in `<out>/report/`), then trained on all of it and written to `out`
    with that table. `settings`: an experiment file's MRMP section (default: TrainConfig's,
    300 epochs); `epochs` overrides either. `test_fold` None skips the measurement (the
    manifest then has no table)."""
    if settings is not None:
        tc = mrmp_config(data, settings, prior, epochs)
    else:
        tc = train_config(data, method="mrmp", prior=prior, epochs=epochs or 300, seed=SEED)
    evaluation: dict[str, Any] = {"protocol": "none (no fold held out)", "samples": 0}
    if test_fold is not None:
        log(f"training without fold {test_fold} to measure the table")
        measured = build_model(data, ModelSpec(prior=prior, seed=SEED))
        history = fit(data, measured, test_fold, tc, desc=f"held-out fold {test_fold}")
        _, _, xte, yte = data.split(test_fold)
        text = (
            f"{data.protocol.description}: a model trained with the same settings without "
            f"fold {test_fold}, evaluated on it"
        )
        evaluation = evaluation_table(measured, xte, yte, service_rates(tc), text)
        evaluation["folds"] = [test_fold]
        classes = list(data.dataset.class_names)
        served = (0.0, tc.max_rate)
        rates = report_rates(served)
        table = evaluation["rates"]
        write_model_report(out, measured, xte, yte, classes, table, history, rates, served)
    log("training on all of the data")
    model = build_model(data, ModelSpec(prior=prior, seed=SEED))
    fit(data, model, None, tc, desc=f"release {prior}")
    manifest = manifest_for(data, model, tc, name=name, command=command, evaluation=evaluation)
    return save_model(out, model, manifest)

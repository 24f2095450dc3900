"""`mrmp train` and `mrmp eval` on a named dataset (sbu, fpha, synthetic-*) or on a dataset
folder of one's own (`--data DIR`, docs/datasets.md): a model folder written with its
held-out evaluation table and, beside it, its report (lab/model_report.py); a stored model's
accuracy per rate on a fold."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import torch
import typer

from lab.cli_options import CONFIG_HELP, command_line, experiment, parse_fold, parse_rates
from lab.experiment import (
    Data,
    ModelSpec,
    build_model,
    evaluation_table,
    fit,
    load_data,
    load_folder,
    manifest_for,
    service_rates,
    train_config,
)
from lab.model_report import report_rates, write_model_report
from mrmp.derive import MagnitudeIndex
from mrmp.priors import PRIORS
from mrmp.rates import MODES, rate_key
from mrmp.skeleton import DescriptorConfig
from mrmp.skeleton.descriptor import SkeletonShapeError
from mrmp.store import MANIFEST, StoreError, load_model, save_model
from training.alignment import ALIGNMENT_RATES, prior_alignment
from training.datasets import DatasetFolderError, SkeletonDataset
from training.datasets.folder import TEST_FOLD
from training.evaluate import RATE_GRID, evaluate_rate
from training.train import LOW_RATES, LR_SCHEDULES, METHODS, PAPER_RATES

_DATA_HELP = "a dataset folder of one's own (docs/datasets.md), instead of --dataset"
_FOLD_HELP = (
    "held-out fold: a number, 'none' (train on all), or 'test' (a folder's test rows, fold 1); "
    "default 'test' with --data, 'none' with --dataset"
)


def load_for(
    command: str,
    dataset: str | None,
    folder: Path | None,
    config: Path | None,
    data_dir: str | None,
    descriptor: DescriptorConfig | None = None,
    check: Callable[[SkeletonDataset], None] | None = None,
) -> Data:
    """The data a command runs on: the folder, else the named dataset (default sbu), under
    the experiment file's protocol when one is given; `check` sees a folder's dataset before
    it is described. A bad folder or file ends it (exit 2)."""
    if dataset is not None and folder is not None:
        raise typer.BadParameter("give --dataset or --data, not both")
    proto = experiment(command, config).protocol if config is not None else None
    if folder is None:
        return load_data(dataset or "sbu", descriptor, data_dir=data_dir, proto=proto)
    try:
        return load_folder(folder, descriptor, proto, check)
    except DatasetFolderError as e:
        typer.echo(f"mrmp {command}: {e}", err=True)
        raise typer.Exit(2) from None
    except SkeletonShapeError as e:  # a descriptor made for another layout
        source = config or "the model's manifest"
        typer.echo(f"mrmp {command}: {source}: its descriptor does not fit {folder}: {e}", err=True)
        raise typer.Exit(2) from None


def held_out(data: Data, text: str | None, folder: bool) -> int | None:
    """The fold `text` names (see _FOLD_HELP), checked against the dataset's folds."""
    text = text or ("test" if folder else "none")
    fold = TEST_FOLD if text == "test" else parse_fold(text)
    folds = sorted({int(f) for f in data.dataset.folds})
    if fold is not None and fold not in folds:
        raise typer.BadParameter(f"fold {fold} is not among {data.dataset.name}'s folds {folds}")
    return fold


def train_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="model folder to write (manifest + weights)")],
    dataset: Annotated[
        str | None, typer.Option(help="sbu (default), fpha, synthetic-sbu, synthetic-fpha")
    ] = None,
    data: Annotated[Path | None, typer.Option(help=_DATA_HELP)] = None,
    config: Annotated[
        Path | None, typer.Option(help=f"{CONFIG_HELP}: its protocol (descriptor, batch...)")
    ] = None,
    method: Annotated[str, typer.Option(help=f"one of {', '.join(METHODS)}")] = "mrmp",
    prior: Annotated[str, typer.Option(help=f"one of {', '.join(PRIORS)}")] = "gaussian",
    rates: Annotated[str | None, typer.Option(help="comma-separated training rates")] = None,
    epochs: int = 300,
    lr: Annotated[float, typer.Option(help="Adam's learning rate")] = 1e-3,
    lr_schedule: Annotated[
        str, typer.Option(help=f"one of {', '.join(LR_SCHEDULES)} (cosine: from --lr to 0)")
    ] = "constant",
    test_fold: Annotated[str | None, typer.Option(help=_FOLD_HELP)] = None,
    kl_weight: float = 1.0,
    rates_per_step: Annotated[int | None, typer.Option(help="rates sampled per step")] = 4,
    seed: int = 0,
    name: Annotated[str | None, typer.Option(help="model name (default: folder name)")] = None,
    report: Annotated[
        bool, typer.Option(help="write <out>/report/ (plots, confusion) on held-out data")
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="replace a model already in --out")] = False,
    data_dir: Annotated[str | None, typer.Option(help="datasets root (or MRMP_DATA_DIR)")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="resumable training state")] = None,
) -> None:
    """Train a model and write it to a model folder, with its held-out evaluation table; with
    held-out data, its report beside it (<out>/report/)."""
    if method not in METHODS:
        raise typer.BadParameter(f"method must be one of {', '.join(METHODS)}")
    if prior not in PRIORS:
        raise typer.BadParameter(f"prior must be one of {', '.join(PRIORS)}")
    if lr_schedule not in LR_SCHEDULES:
        raise typer.BadParameter(f"lr-schedule must be one of {', '.join(LR_SCHEDULES)}")
    if (out / MANIFEST).exists() and not overwrite:
        raise typer.BadParameter(f"{out} holds a model already; --overwrite replaces it")
    train_rates = parse_rates(rates, LOW_RATES + PAPER_RATES)
    loaded = load_for("train", dataset, data, config, data_dir)
    fold = held_out(loaded, test_fold, data is not None)
    _, _, xte, yte = loaded.split(fold)
    model = build_model(loaded, ModelSpec(prior=prior, seed=seed))
    cfg = train_config(
        loaded,
        method=method,
        prior=prior,
        rates=train_rates,
        epochs=epochs,
        lr=lr,
        lr_schedule=lr_schedule,
        kl_weight=kl_weight,
        rates_per_step=rates_per_step,
        seed=seed,
    )
    history = fit(loaded, model, fold, cfg, checkpoint=checkpoint)
    proto = f"held-out fold {fold}" if fold is not None else "none (trained on all data)"
    table = evaluation_table(model, xte, yte, service_rates(cfg), proto)
    manifest = manifest_for(
        loaded,
        model,
        cfg,
        name=name or out.name,
        command=command_line(ctx),
        evaluation=table,
        test_fold=fold,
    )
    manifest = save_model(out, model, manifest)
    typer.echo(f"wrote {out} (version {manifest.version[:12]}, params {manifest.params})")
    if not len(yte):
        return
    shown = report_rates(manifest.rate_range)
    for r in shown:
        row = manifest.evaluated()[rate_key(r)]
        typer.echo(f"held-out accuracy at rate {rate_key(r)}: {row.accuracy:.2f}%")
    if report:
        classes = list(loaded.dataset.class_names)
        where = write_model_report(
            out, model, xte, yte, classes, table["rates"], history, shown, manifest.rate_range
        )
        typer.echo(f"wrote {where} (accuracy.png, confusion.png, training.png, report.json)")


def eval_cmd(
    model: Annotated[Path, typer.Option(help="model folder")],
    dataset: Annotated[str | None, typer.Option(help="sbu (default), fpha, synthetic-*")] = None,
    data: Annotated[Path | None, typer.Option(help=_DATA_HELP)] = None,
    test_fold: Annotated[
        str | None,
        typer.Option(
            help="fold to evaluate on, 'none' for all, 'test' for a folder's test rows; default: "
            "the fold the model held out (as its manifest records), else 0 (--dataset) or 'test'"
        ),
    ] = None,
    rates: Annotated[str | None, typer.Option(help="comma-separated rates")] = None,
    mode: Annotated[str, typer.Option(help=f"one of {', '.join(MODES)}")] = "prior",
    predictions: Annotated[
        Path | None, typer.Option(help="write per-sequence predictions per rate as JSON")
    ] = None,
    data_dir: str | None = None,
) -> None:
    """Accuracy and observed rate of a stored model at each rate, on a dataset's fold."""
    if mode not in MODES:
        raise typer.BadParameter(f"mode must be one of {', '.join(MODES)}")
    try:
        net, manifest = load_model(model)
    except StoreError as e:
        typer.echo(f"mrmp eval: {e}", err=True)
        raise typer.Exit(2) from None

    def fits(ds: SkeletonDataset) -> None:
        if manifest.class_names != list(ds.class_names):
            raise typer.BadParameter(
                f"model {model} was trained on the classes {manifest.class_names}, "
                f"{ds.name} has {list(ds.class_names)}"
            )
        if manifest.layout.joint_names != list(ds.layout.joint_names):
            raise typer.BadParameter(
                f"model {model} takes {manifest.layout.num_joints} joints "
                f"({', '.join(manifest.layout.joint_names[:3])}, ...), {ds.name} has "
                f"{ds.layout.num_joints} ({', '.join(ds.layout.joint_names[:3])}, ...)"
            )

    # The model's own preprocessing, as the service applies it.
    descriptor = manifest.descriptor_config
    loaded = load_for("eval", dataset, data, None, data_dir, descriptor, check=fits)
    ds = loaded.dataset
    fits(ds)
    recorded = manifest.training.data if manifest.training is not None else None
    if test_fold is None and recorded is not None and recorded.get("dataset") == ds.name:
        held = recorded.get("held_out_fold")
        test_fold = "none" if held is None else str(held)
    if test_fold is None and data is None:
        test_fold = "0"
    fold = held_out(loaded, test_fold, data is not None)
    idx = torch.arange(len(loaded.y)) if fold is None else torch.from_numpy(ds.split(fold)[1])
    x, y = loaded.x[idx], loaded.y[idx]
    typer.echo(f"{ds.name}: {len(y)} sequences ({'all' if fold is None else f'fold {fold}'})")
    preds = {}
    low, high = manifest.rate_range
    index = MagnitudeIndex(net)
    for r in parse_rates(rates, (0.0, *(r for r in RATE_GRID if low <= r <= high))):
        row, pred = evaluate_rate(index, x, y, r, mode)
        preds[rate_key(r)] = pred.tolist()
        typer.echo(
            f"rate {r:.2f}  accuracy {row['accuracy']:6.2f}%  observed {row['observed_rate']:.4f}"
        )
    if predictions is not None:
        ids = [ds.ids[i] for i in idx.tolist()]
        predictions.write_text(json.dumps({"ids": ids, "mode": mode, "predictions": preds}))
        typer.echo(f"wrote {predictions}")


def alignment_cmd(
    model: Annotated[Path, typer.Option(help="model folder")],
    rates: Annotated[
        str | None, typer.Option(help="comma-separated rates (default: 0.50 to 0.98 by 0.01)")
    ] = None,
) -> None:
    """How closely each prunable layer's latent weights follow the model's prior: training's KL
    estimate, and the worst prior-mode observed rate against the requested one (points)."""
    try:
        net, manifest = load_model(model)
    except StoreError as e:
        typer.echo(f"mrmp alignment: {e}", err=True)
        raise typer.Exit(2) from None
    rows = prior_alignment(net, parse_rates(rates, ALIGNMENT_RATES))
    typer.echo(f"{manifest.name}: prior {net.prior.name}")
    typer.echo(f"{'layer':<24} {'weights':>9} {'KL':>9} {'worst observed - requested':>27}")
    for row in rows:
        kl = "-" if row.kl is None else f"{row.kl:.5f}"
        where = f"{row.worst_error:+.2f} points at {row.worst_rate:.2f}"
        typer.echo(f"{row.name:<24} {row.weights:>9} {kl:>9} {where:>27}")

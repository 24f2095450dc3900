"""`mrmp train | eval | reproduce | ablate | robustness | serve | release`: the command line
over the lab, training and the service (`serve` is `service.cli`'s, also installed alone as
`mrmp-serve`)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import torch
import typer

from lab.config import ConfigError, Experiment, load_experiment
from lab.experiment import (
    ModelSpec,
    build_model,
    evaluation_table,
    fit,
    load_data,
    manifest_for,
    service_rates,
    train_config,
)
from lab.tables import ablation_table
from mrmp.priors import PRIORS
from mrmp.rates import MODES, rate_key
from mrmp.store import load_model, save_model
from service.cli import serve_cmd
from training.evaluate import RATE_GRID, evaluate_rate
from training.train import LOW_RATES, METHODS, PAPER_RATES

app = typer.Typer(help="One-shot multi-rate pruning of a skeleton GCN.", no_args_is_help=True)


def _command_line(ctx: typer.Context) -> str:
    """The command with every option spelled out, defaults included, to rerun it exactly."""
    words = ["mrmp", ctx.info_name or ""]
    for key, value in ctx.params.items():
        if value is None:
            continue
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            words.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            words += [f"--{flag}", str(value)]
    return shlex.join(words)


def _rates(text: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    if not text:
        return default
    try:
        rates = tuple(float(r) for r in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"rates must be comma-separated numbers, got {text!r}") from None
    bad = [r for r in rates if not 0.0 <= r < 1.0]
    if bad:
        raise typer.BadParameter(f"rates must lie in [0, 1): {bad}")
    return rates


def _units(dataset: str) -> Path:
    """Where a dataset's reproduction units live (committed; checkpoints are ignored)."""
    return Path("docs/results/units") / dataset


def _fold(text: str) -> int | None:
    if text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"fold must be an integer or 'none', got {text!r}") from None


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="model folder to write (manifest + weights)")],
    dataset: Annotated[str, typer.Option(help="sbu, fpha, synthetic-sbu, synthetic-fpha")] = "sbu",
    method: Annotated[str, typer.Option(help=f"one of {', '.join(METHODS)}")] = "mrmp",
    prior: Annotated[str, typer.Option(help=f"one of {', '.join(PRIORS)}")] = "gaussian",
    rates: Annotated[str | None, typer.Option(help="comma-separated training rates")] = None,
    epochs: int = 300,
    test_fold: Annotated[
        str, typer.Option(help="held-out fold (SBU 0-4, FPHA 1 = test) or 'none' to use all")
    ] = "none",
    kl_weight: float = 1.0,
    rates_per_step: Annotated[int | None, typer.Option(help="rates sampled per step")] = 4,
    seed: int = 0,
    name: Annotated[str | None, typer.Option(help="model name (default: folder name)")] = None,
    data_dir: Annotated[str | None, typer.Option(help="datasets root (or MRMP_DATA_DIR)")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="resumable training state")] = None,
) -> None:
    """Train a model and write it to a model folder, with its held-out evaluation table."""
    if method not in METHODS:
        raise typer.BadParameter(f"method must be one of {', '.join(METHODS)}")
    if prior not in PRIORS:
        raise typer.BadParameter(f"prior must be one of {', '.join(PRIORS)}")
    train_rates = _rates(rates, LOW_RATES + PAPER_RATES)
    fold = _fold(test_fold)
    data = load_data(dataset, data_dir=data_dir)
    _, _, xte, yte = data.split(fold)
    model = build_model(data, ModelSpec(prior=prior, seed=seed))
    cfg = train_config(
        data,
        method=method,
        prior=prior,
        rates=train_rates,
        epochs=epochs,
        kl_weight=kl_weight,
        rates_per_step=rates_per_step,
        seed=seed,
    )
    fit(data, model, fold, cfg, checkpoint=checkpoint)
    proto = f"held-out fold {fold}" if fold is not None else "none (trained on all data)"
    table = evaluation_table(model, xte, yte, service_rates(cfg), proto)
    manifest = manifest_for(
        data,
        model,
        cfg,
        name=name or out.name,
        command=_command_line(ctx),
        evaluation=table,
        test_fold=fold,
    )
    manifest = save_model(out, model, manifest)
    typer.echo(f"wrote {out} (version {manifest.version[:12]}, params {manifest.params})")


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Option(help="model folder")],
    dataset: str = "sbu",
    test_fold: Annotated[str, typer.Option(help="fold to evaluate on, or 'none' for all")] = "0",
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
    net, manifest = load_model(model)
    # The model's own preprocessing, as the service applies it.
    descriptor = manifest.descriptor_config
    data = load_data(dataset, descriptor, data_dir=data_dir)
    if manifest.class_names != list(data.dataset.class_names):
        raise typer.BadParameter(f"model {model} was not trained on {dataset}'s classes")
    fold = _fold(test_fold)
    idx = (
        torch.arange(len(data.y)) if fold is None else torch.from_numpy(data.dataset.split(fold)[1])
    )
    x, y = data.x[idx], data.y[idx]
    preds = {}
    for r in _rates(rates, (0.0, *RATE_GRID)):
        row, pred = evaluate_rate(net, x, y, r, mode)
        preds[rate_key(r)] = pred.tolist()
        typer.echo(
            f"rate {r:.2f}  accuracy {row['accuracy']:6.2f}%  observed {row['observed_rate']:.4f}"
        )
    if predictions is not None:
        ids = [data.dataset.ids[i] for i in idx.tolist()]
        predictions.write_text(json.dumps({"ids": ids, "mode": mode, "predictions": preds}))
        typer.echo(f"wrote {predictions}")


_CONFIG_HELP = "experiment file, e.g. configs/sbu.toml"


def _experiment(command: str, config: Path) -> Experiment:
    """The experiment `config` describes; a bad file ends the command (exit 2)."""
    try:
        return load_experiment(config)
    except ConfigError as e:
        typer.echo(f"mrmp {command}: {e}", err=True)
        raise typer.Exit(2) from None


def _experiment_command(command: str, config: Path, *options: str) -> str:
    """What a result records as its command: the config shapes it; the work-splitting and
    machine options do not, so they are left out."""
    return shlex.join(["mrmp", command, "--config", str(config), *options])


@app.command("reproduce")
def reproduce_cmd(
    config: Annotated[Path, typer.Option(help=_CONFIG_HELP)],
    work: Annotated[
        Path | None,
        typer.Option(help="resumable work folder (default docs/results/units/<dataset>)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("docs/results"),
    folds: Annotated[
        str | None, typer.Option(help="comma-separated test folds (to split a run)")
    ] = None,
    stages: Annotated[
        str | None, typer.Option(help="comma-separated subset of dense,mrmp,srmp (to split a run)")
    ] = None,
    srmp_rates: Annotated[
        str | None, typer.Option(help="comma-separated SRMP rates to train (to split a run)")
    ] = None,
    mrmp_priors: Annotated[
        str | None, typer.Option(help="comma-separated MRMP priors to train (to split a run)")
    ] = None,
    aggregate_only: Annotated[bool, typer.Option(help="only rebuild JSON and plots")] = False,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads")] = None,
    data_dir: str | None = None,
) -> None:
    """The paper's results on one dataset: dense, MP, SRMP, MRMP x 3 priors (resumable)."""
    from lab.reproduce import STAGES, Reproduction

    exp = _experiment("reproduce", config)
    if threads:
        torch.set_num_threads(threads)
    fold_list = tuple(int(f) for f in folds.split(",")) if folds else None
    if fold_list is not None and not set(fold_list) <= set(exp.protocol.test_folds):
        raise typer.BadParameter(f"folds for {exp.dataset} are {exp.protocol.test_folds}")
    chosen = tuple(stages.split(",")) if stages else STAGES
    if not set(chosen) <= set(STAGES):
        raise typer.BadParameter(f"stages are {', '.join(STAGES)}")
    prior_list = tuple(mrmp_priors.split(",")) if mrmp_priors else None
    if prior_list is not None:
        if not set(prior_list) <= set(exp.mrmp.priors):
            raise typer.BadParameter(f"priors are {', '.join(exp.mrmp.priors)}")
        if "srmp" in chosen:  # choosing the SRMP prior would train every other MRMP prior
            raise typer.BadParameter("--mrmp-priors splits the mrmp stage: add --stages mrmp")
    repro = Reproduction(
        exp,
        work or _units(exp.dataset),
        folds=fold_list,
        mrmp_priors=prior_list,
        srmp_rates=_rates(srmp_rates, PAPER_RATES) if srmp_rates else None,
        # A split run records the command of the whole run: the splits do not change results.
        command=_experiment_command("reproduce", config),
        data_dir=data_dir,
        log=typer.echo,
    )
    try:
        if not aggregate_only:
            repro.run(chosen)
            if folds or stages or srmp_rates or mrmp_priors:
                typer.echo("part of the run is done; aggregate with --aggregate-only when all is")
                return
        results = repro.aggregate(out)
    except ValueError as e:
        typer.echo(f"mrmp reproduce: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({k: results.get(k) for k in ("dataset", "dense", "srmp_prior")}))


@app.command("ablate")
def ablate_cmd(
    config: Annotated[Path, typer.Option(help=_CONFIG_HELP)],
    out: Annotated[Path, typer.Option(help="results folder")] = Path("docs/results"),
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads")] = None,
    data_dir: str | None = None,
) -> None:
    """Dense accuracy as the protocol's descriptor and augmentation choices are added one
    after another (the config's [ablation]; resumable): writes <out>/ablation_<dataset>.json
    and .md."""
    from lab.ablation import AblationError, ablate

    exp = _experiment("ablate", config)
    if threads:
        torch.set_num_threads(threads)
    try:
        results = ablate(
            exp,
            out / f"ablation_{exp.dataset}.json",
            _experiment_command("ablate", config),
            data_dir,
            log=typer.echo,
        )
    except AblationError as e:
        typer.echo(f"mrmp ablate: {e}", err=True)
        raise typer.Exit(2) from None
    table = ablation_table(results)
    (out / f"ablation_{exp.dataset}.md").write_text(table)
    typer.echo(table)


@app.command("robustness")
def robustness_cmd(
    config: Annotated[Path, typer.Option(help=_CONFIG_HELP)],
    folds: Annotated[str, typer.Option(help="comma-separated test folds")] = "0",
    epochs: Annotated[
        int | None, typer.Option(help="MRMP epochs of both models (default: the config's)")
    ] = None,
    missing_views: Annotated[
        int, typer.Option(help="missing-detection views of the second model")
    ] = 4,
    prior: Annotated[str, typer.Option(help="MRMP prior of both models")] = "gaussian",
    rates: Annotated[str, typer.Option(help="comma-separated rates (prior mode)")] = "0.5,0.9",
    out: Annotated[Path, typer.Option(help="results folder")] = Path("docs/results"),
    work: Annotated[
        Path | None,
        typer.Option(help="resumable work folder (default docs/results/robustness/<dataset>)"),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads")] = None,
    data_dir: str | None = None,
) -> None:
    """Accuracy under missing detections (frames, a person, hands, scattered joints dropped,
    then filled as serving fills them) of the protocol's MRMP and of MRMP trained with
    missing-detection views (resumable): writes <out>/robustness_<dataset>.json and .md."""
    from lab.robustness import Robustness

    exp = _experiment("robustness", config)
    if threads:
        torch.set_num_threads(threads)
    fold_list = tuple(int(f) for f in folds.split(","))
    if not set(fold_list) <= set(exp.protocol.test_folds):
        raise typer.BadParameter(f"folds for {exp.dataset} are {exp.protocol.test_folds}")
    epochs = epochs or exp.mrmp.epochs
    if epochs < 1 or missing_views < 1:
        raise typer.BadParameter("epochs and missing-views must be >= 1")
    options = ["--folds", folds, "--epochs", str(epochs), "--missing-views", str(missing_views)]
    options += ["--prior", prior, "--rates", rates]
    try:
        robustness = Robustness(
            exp,
            work or Path("docs/results/robustness") / exp.dataset,
            models={"protocol": 0, "missing views": missing_views},
            epochs=epochs,
            prior=prior,
            rates=_rates(rates, ()),
            data_dir=data_dir,
            log=typer.echo,
        )
        results = robustness.run(
            fold_list, out, _experiment_command("robustness", config, *options)
        )
    except ValueError as e:
        typer.echo(f"mrmp robustness: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo((out / f"robustness_{results['dataset']}.md").read_text())


app.command("serve")(serve_cmd)


@app.command("release")
def release_cmd(
    config: Annotated[Path, typer.Option(help=_CONFIG_HELP)],
    out: Annotated[Path, typer.Option(help="model folder to write")],
    work: Annotated[
        Path | None, typer.Option(help="reproduction units (default docs/results/units/<dataset>)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="model name (default: folder name)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads")] = None,
    data_dir: str | None = None,
) -> None:
    """Train the shipped model: MRMP (the config's settings) with the reproduction's best prior
    on all of the dataset, with the reproduction's cross-validated table in its manifest."""
    from lab.release import release
    from lab.reproduce import Reproduction

    exp = _experiment("release", config)
    if threads:
        torch.set_num_threads(threads)
    repro = Reproduction(exp, work or _units(exp.dataset), data_dir=data_dir, log=typer.echo)
    named = ("--name", name) if name else ()
    try:
        manifest = release(
            repro,
            out,
            name=name or out.name,
            command=_experiment_command("release", config, "--out", str(out), *named),
        )
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"mrmp release: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {out} (prior {manifest.prior}, version {manifest.version[:12]})")


if __name__ == "__main__":
    app()

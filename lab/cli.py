"""`mrmp convert | train | eval | alignment | reproduce | ablate | robustness | serve | release`:
the command line over the lab, training and the service (`serve` is `service.cli`'s, also
installed alone as `mrmp-serve`; `train`, `eval` and `alignment` are lab/model_commands.py's,
`convert` lab/convert.py's)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import torch
import typer

from lab.cli_options import CONFIG_HELP, command_line, experiment, parse_rates
from lab.convert import convert_app
from lab.model_commands import alignment_cmd, eval_cmd, held_out, load_for, train_cmd
from lab.tables import ablation_table
from mrmp.priors import PRIORS
from service.cli import serve_cmd
from training.train import PAPER_RATES

app = typer.Typer(help="One-shot multi-rate pruning of a skeleton GCN.", no_args_is_help=True)


def _units(dataset: str) -> Path:
    """Where a dataset's reproduction units live (committed; checkpoints are ignored)."""
    return Path("docs/results/units") / dataset


app.add_typer(convert_app, name="convert")
app.command("train")(train_cmd)
app.command("eval")(eval_cmd)
app.command("alignment")(alignment_cmd)


def _experiment_command(command: str, config: Path, *options: str) -> str:
    """What a result records as its command: the config shapes it; the work-splitting and
    machine options do not, so they are left out."""
    return shlex.join(["mrmp", command, "--config", str(config), *options])


@app.command("reproduce")
def reproduce_cmd(
    config: Annotated[Path, typer.Option(help=CONFIG_HELP)],
    work: Annotated[
        Path | None,
        typer.Option(help="resumable work folder (default docs/results/units/<dataset>)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("docs/results"),
    seeds: Annotated[
        str | None, typer.Option(help="comma-separated training seeds (to split a run)")
    ] = None,
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
    threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="torch intra-op threads (recorded in each unit; 1 by default, so a unit's "
            "float sums do not depend on the machine's cores: split runs across processes)",
        ),
    ] = 1,
    data_dir: str | None = None,
) -> None:
    """The paper's results on one dataset: dense, MP, SRMP, MRMP x 3 priors, each trained with
    every seed of the config and averaged over seeds (resumable)."""
    from lab.reproduce import STAGES, Reproduction

    exp = experiment("reproduce", config)
    seed_list = tuple(int(s) for s in seeds.split(",")) if seeds else None
    if seed_list is not None and not set(seed_list) <= set(exp.seeds):
        raise typer.BadParameter(f"seeds for {exp.dataset} are {exp.seeds} (the config's)")
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
        seeds=seed_list,
        folds=fold_list,
        mrmp_priors=prior_list,
        srmp_rates=parse_rates(srmp_rates, PAPER_RATES) if srmp_rates else None,
        # A split run records the command of the whole run: the splits do not change results.
        command=_experiment_command("reproduce", config),
        data_dir=data_dir,
        log=typer.echo,
    )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if not aggregate_only:
            repro.run(chosen)
            if seeds or folds or stages or srmp_rates or mrmp_priors:
                typer.echo("part of the run is done; aggregate with --aggregate-only when all is")
                return
        results = repro.aggregate(out)
    except ValueError as e:
        typer.echo(f"mrmp reproduce: {e}", err=True)
        raise typer.Exit(2) from None
    finally:  # in-process callers (tests) keep their own setting
        torch.set_num_threads(previous_threads)
    typer.echo(json.dumps({k: results.get(k) for k in ("dataset", "dense", "srmp_prior")}))


@app.command("ablate")
def ablate_cmd(
    config: Annotated[Path, typer.Option(help=CONFIG_HELP)],
    out: Annotated[Path, typer.Option(help="results folder")] = Path("docs/results"),
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads")] = None,
    data_dir: str | None = None,
) -> None:
    """Dense accuracy as the protocol's descriptor and augmentation choices are added one
    after another (the config's [ablation]; resumable): writes <out>/ablation_<dataset>.json
    and .md."""
    from lab.ablation import AblationError, ablate

    exp = experiment("ablate", config)
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
    config: Annotated[Path, typer.Option(help=CONFIG_HELP)],
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

    exp = experiment("robustness", config)
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
            rates=parse_rates(rates, ()),
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
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="model folder to write")],
    config: Annotated[
        Path | None, typer.Option(help=f"{CONFIG_HELP} (with --data: its protocol and MRMP)")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="a dataset folder of one's own (docs/datasets.md)")
    ] = None,
    work: Annotated[
        Path | None, typer.Option(help="reproduction units (default docs/results/units/<dataset>)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="model name (default: folder name)")] = None,
    prior: Annotated[str, typer.Option(help=f"with --data: one of {', '.join(PRIORS)}")] = (
        "gaussian"
    ),
    epochs: Annotated[
        int | None, typer.Option(help="with --data: MRMP epochs (default: the config's, or 300)")
    ] = None,
    test_fold: Annotated[
        str, typer.Option(help="with --data: the fold measured ('test': the test rows)")
    ] = "test",
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads")] = None,
    data_dir: str | None = None,
) -> None:
    """The model to ship. With --config: MRMP (the config's settings) with the reproduction's
    best prior on all of the dataset, with the reproduction's cross-validated table. With
    --data: MRMP trained without the held-out fold to measure its table, then on all of the
    folder, carrying that table (and the held-out run's report in <out>/report/)."""
    from lab.release import release, release_folder
    from lab.reproduce import Reproduction

    if threads:
        torch.set_num_threads(threads)
    if data is not None:
        if prior not in PRIORS:
            raise typer.BadParameter(f"prior must be one of {', '.join(PRIORS)}")
        loaded = load_for("release", None, data, config, None)
        mrmp = experiment("release", config).mrmp if config is not None else None
        manifest = release_folder(
            loaded,
            out,
            name=name or out.name,
            command=command_line(ctx),
            prior=prior,
            test_fold=held_out(loaded, test_fold, True),
            epochs=epochs,
            settings=mrmp,
            log=typer.echo,
        )
        typer.echo(f"wrote {out} (prior {manifest.prior}, version {manifest.version[:12]})")
        return
    if config is None:
        raise typer.BadParameter("give --config (a built-in dataset's experiment) or --data")
    exp = experiment("release", config)
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

"""What the `mrmp` commands parse alike: rate lists, folds, and the command line a result
records."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from lab.config import ConfigError, Experiment, load_experiment

CONFIG_HELP = "experiment file, e.g. configs/sbu.toml"


def command_line(ctx: typer.Context) -> str:
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


def parse_rates(text: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    """Comma-separated rates in [0, 1) (`default` when empty); typer.BadParameter otherwise."""
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


def parse_fold(text: str) -> int | None:
    """A fold number, or None for 'none'; typer.BadParameter otherwise."""
    if text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"fold must be an integer or 'none', got {text!r}") from None


def experiment(command: str, config: Path) -> Experiment:
    """The experiment `config` describes; a bad file ends the command (exit 2)."""
    try:
        return load_experiment(config)
    except ConfigError as e:
        typer.echo(f"mrmp {command}: {e}", err=True)
        raise typer.Exit(2) from None

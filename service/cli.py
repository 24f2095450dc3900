"""`mrmp-serve` (also `mrmp serve`): serve a model store over HTTP. Needs only the serving core
and the service, so the service image runs it without the lab or training installed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from mrmp.store import StoreError, load_model
from service.lifecycle import DrainingHttpToolsProtocol, DrainingMultiprocess, GracefulServer
from service.policy import RatePolicy
from service.settings import Settings

WORKER_HEALTHCHECK_S = 30


def serve_cmd(
    model: Annotated[
        Path | None, typer.Option(help="model store folder (default: model_store/sbu-mrmp)")
    ] = None,
    host: Annotated[str | None, typer.Option(help="interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (one per core)")] = None,
) -> None:
    """Serve a model over HTTP. Every setting is also an MRMP_* environment variable (see
    service/settings.py); flags override the environment."""
    flags = {"model_path": model, "host": host, "port": port, "workers": workers}
    flags = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = Settings(**flags)
        _, manifest = load_model(settings.model_path)  # refuse a bad store, the file named
        RatePolicy.of(settings, manifest.rate_range)  # tiers the model cannot serve
    except (ValidationError, SettingsError, StoreError, ValueError) as e:
        typer.echo(f"mrmp serve: {e}", err=True)
        raise typer.Exit(2) from None
    # Workers build their app from the environment: hand the flags on through it.
    for key, value in flags.items():
        os.environ[f"MRMP_{key.upper()}"] = str(value)
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Several processes: prometheus-client's multiprocess mode merges their metrics.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mrmp-metrics-")
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "http": DrainingHttpToolsProtocol,
    }
    config = uvicorn.Config(
        "service.app:create_app",
        factory=True,
        workers=settings.workers,
        # A spawned worker answers the supervisor's health check only once torch, onnxruntime
        # and the app are imported (3-4 s alone on 2 cores): uvicorn's 5 s killed starting
        # workers on a busy machine.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        **options,
    )
    if settings.workers > 1:
        # As uvicorn.run with workers, but the supervisor drains them first.
        DrainingMultiprocess(config, [config.bind_socket()], settings.drain_seconds).run()
        return
    GracefulServer(config, settings.drain_seconds).run()


def main() -> None:
    typer.run(serve_cmd)

"""The FastAPI app factory: model host and data plane, routes, the error handler, request
metrics, start-up warm-up."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import routes_v1, routes_v2
from service.dataplane import DataPlane
from service.errors import (
    ApiError,
    HttpError,
    InternalError,
    InvalidRequestError,
    MethodNotAllowedError,
    UnknownEndpointError,
)
from service.host import ModelHost
from service.http_methods import allow_header, serve_head_where_get
from service.input_rules import InputRules
from service.lifecycle import DRAINING, CloseWhileDraining, drain_on_signal
from service.metrics import Metrics
from service.responses import json_response
from service.settings import Settings

log = logging.getLogger("mrmp.service")


class RequestMetrics:
    """Pure ASGI middleware: duration histogram and status counter per route template (bounded
    labels: unknown paths count as "unmatched"). The in-flight count is the data plane's."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        m = self.metrics
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            m.request_duration.labels(endpoint).observe(time.perf_counter() - t0)
            m.requests.labels(endpoint, str(status[0])).inc()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Load and check the model (a bad store raises StoreError naming the file), then build the
    app. Tiers are exported and warmed in the background once the app starts; readiness
    (/v2/health/ready) turns 200 after that."""
    settings = settings or Settings()
    metrics = Metrics(settings.rate_label_step)
    host = ModelHost(settings, metrics)
    if settings.workers > 1 and threading.current_thread() is threading.main_thread():
        drain_on_signal()  # a worker of `mrmp serve --workers N`: its supervisor says when

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        def prepare() -> None:
            host.prepare_tiers()
            # Everything allocated so far lives as long as the process: keep it out of the
            # collector's full passes, which otherwise pause ~90 ms under large requests.
            gc.collect()
            gc.freeze()

        threading.Thread(target=prepare, name="mrmp-tiers", daemon=True).start()
        yield

    app = FastAPI(
        title="mrmp",
        summary="One multi-rate pruned GCN for skeleton action recognition, any rate per request",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.host = host
    app.state.plane = DataPlane(host, metrics, InputRules.of(host.manifest, settings))
    app.state.is_ready = lambda: host.ready.is_set() and not DRAINING.is_set()
    app.include_router(routes_v1.router)
    app.include_router(routes_v2.router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    serve_head_where_get(app.router)

    async def refuse(request: Request, exc: Exception) -> Response:
        """The one error handler: every refusal as {"error": ...}, counted by its reason."""
        error = _as_api_error(request, exc)
        metrics.errors.labels(error.reason).inc()
        response = json_response({"error": error.message}, error.status)
        response.headers.update(error.headers)
        return response

    for caught in (ApiError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(caught, refuse)

    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(CloseWhileDraining)
    return app


def _as_api_error(request: Request, exc: Exception) -> ApiError:
    """Ours as raised; the framework's own errors, and bugs (logged), as ours."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        ]
        return InvalidRequestError("; ".join(parts) or "invalid request")
    if isinstance(exc, HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            return UnknownEndpointError(f"no such endpoint: {request.method} {request.url.path}")
        if exc.status_code == 405:
            error = MethodNotAllowedError(detail)
            error.headers = {"Allow": allow_header((exc.headers or {}).get("Allow", ""))}
            return error
        return HttpError(detail, exc.status_code)
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return InternalError(f"internal error ({type(exc).__name__})")


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("mrmp")
    except importlib.metadata.PackageNotFoundError:
        return "0"

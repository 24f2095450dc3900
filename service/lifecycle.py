"""Graceful shutdown: on SIGTERM (or SIGINT) the service first reports not ready, keeps serving
for `drain_seconds` so load balancers and Kubernetes stop routing to it, then stops accepting,
finishes the requests in flight within `graceful_timeout`, and exits 0."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator
from types import FrameType

import uvicorn

# Process-wide: set by the first termination signal, read by the readiness endpoints.
DRAINING = threading.Event()


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if DRAINING.is_set() or self.drain_seconds <= 0:
            super().handle_exit(sig, frame)  # a second signal: stop now (uvicorn's way)
            return
        DRAINING.set()
        timer = threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        DRAINING.clear()
        with super().capture_signals():
            yield
            # uvicorn re-raises the caught signal after shutting down, so the process would
            # die of it; a shutdown that completed is a success: exit 0.
            self._captured_signals.clear()

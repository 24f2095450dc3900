"""Graceful shutdown: on SIGTERM (or SIGINT) the service first reports not ready, keeps serving
for `drain_seconds` so load balancers and Kubernetes stop routing to it, then stops accepting,
finishes the requests in flight within `graceful_timeout`, and exits 0.

No request whose bytes reached the server is dropped. uvicorn alone resets two kinds when it
stops: connections the kernel had completed but the server not yet accepted (closing a listener
resets its queue), and accepted connections whose request was still unread in the socket
(closing a socket with unread data sends a reset). So, before the listeners close, the kernel
is told to drop new handshakes (a socket filter: the client's connect is refused later, never
reset after sending) and the queue is accepted; while draining, every answer closes its
connection (`Connection: close`), and at shutdown an idle connection is closed only after it
has been quiet a moment, a request arriving meanwhile being served with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Generator, Iterable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

# Process-wide: set by the first termination signal, read by the readiness endpoints.
DRAINING = threading.Event()
# What the supervisor of several workers sends each of them to start draining (DRAINING).
DRAIN_SIGNAL = signal.SIGUSR1

# How long an idle connection may stay open at shutdown for a request already on its way.
QUIET_S = 0.5
# Longest wait for the accept queue to empty before the listeners close regardless.
ACCEPT_QUEUE_S = 2.0

_SO_ATTACH_FILTER = 26  # Linux, <asm-generic/socket.h>
_BPF_RET_K = 0x06  # classic BPF "return k": k = 0 bytes kept, the packet is dropped


def refuse_new_connections(listener: socket.socket) -> None:
    """Drop every packet arriving at `listener` (Linux socket filter): new handshakes do not
    complete, while the connections already queued stay there to be accepted. Elsewhere a
    no-op (the listener closes as uvicorn closes it)."""
    if not sys.platform.startswith("linux"):
        return
    program = ctypes.create_string_buffer(struct.pack("HBBI", _BPF_RET_K, 0, 0, 0))
    fprog = struct.pack("HL", 1, ctypes.addressof(program))
    with socket.socket(fileno=os.dup(listener.fileno())) as sock:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def _accept_queue_empty(listeners: Iterable[socket.socket]) -> bool:
    """Whether no listener has a connection waiting to be accepted."""
    fds = [s.fileno() for s in listeners]
    return not fds or not select.select(fds, [], [], 0)[0]


async def accept_queue_emptied(listeners: Iterable[socket.socket], timeout: float) -> None:
    """Return once no listener has a connection waiting to be accepted (the event loop accepts
    them meanwhile), or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not _accept_queue_empty(listeners) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


class CloseWhileDraining:
    """Pure ASGI middleware: while draining, every answer is sent with `Connection: close`
    (uvicorn then closes its connection), whenever its request arrived, so that clients
    reconnect (through their balancer, to another replica) instead of keeping a connection
    the server will close at shutdown: closing one while idle races a request its client
    sends at that moment, which sees the connection reset and cannot know whether it was
    served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and DRAINING.is_set():
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, except at shutdown: an idle connection (no request, or its last
    answer sent) is closed once it has been quiet QUIET_S, not at once; a request that arrives
    meanwhile is served, and the connection closes after its answer."""

    draining = False
    heard = False  # bytes arrived since the shutdown began

    def shutdown(self) -> None:
        self.draining = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(QUIET_S, self._close_if_quiet)
        else:
            self.cycle.keep_alive = False

    def data_received(self, data: bytes) -> None:
        if self.draining:
            self.heard = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining:
            self.cycle.keep_alive = False

    def _close_if_quiet(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.heard and not self.transport.is_closing():
            self.transport.close()


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if DRAINING.is_set() or self.drain_seconds <= 0:
            DRAINING.set()
            super().handle_exit(sig, frame)  # a second signal: stop now (uvicorn's way)
            return
        DRAINING.set()
        timer = threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        listeners = [s for server in self.servers for s in server.sockets] + list(sockets or [])
        for listener in listeners:
            refuse_new_connections(listener)
        await accept_queue_emptied(listeners, ACCEPT_QUEUE_S)
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        DRAINING.clear()
        with super().capture_signals():
            yield
            # uvicorn re-raises the caught signal after shutting down, so the process would
            # die of it; a shutdown that completed is a success: exit 0.
            self._captured_signals.clear()


def drain_on_signal() -> None:
    """In a worker of several (its main thread, after uvicorn installed its handlers): the
    supervisor's DRAIN_SIGNAL sets DRAINING, so the worker reports not ready while it keeps
    serving; SIGINT is left to the supervisor, which drains on it too (a terminal's Ctrl-C
    reaches every process of its group, and would stop the worker at once)."""
    signal.signal(DRAIN_SIGNAL, lambda sig, frame: DRAINING.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# While draining, the supervisor repeats DRAIN_SIGNAL at this interval (s): a worker that was
# still starting (ignoring it) or was started meanwhile drains too.
DRAIN_REPEAT_S = 0.2


class DrainingMultiprocess(Multiprocess):
    """uvicorn's supervisor of several workers, shutting down as `GracefulServer` does: on the
    first SIGTERM (or SIGINT) every worker reports not ready (DRAIN_SIGNAL, repeated) and keeps
    serving for `drain_seconds`; then the shared listener drops new handshakes, the workers
    accept its queue, and they are stopped (SIGTERM: each answers what it accepted, as uvicorn
    does, its idle connections closed by `DrainingHttpToolsProtocol`). A second signal stops
    them at once. While draining no worker is replaced or added (SIGHUP, SIGTTIN ignored).

    The termination signals are handled when they arrive, not in uvicorn's supervisor loop,
    whose health checks of a starting worker can hold it for seconds."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], drain_seconds: float):
        super().__init__(config, sockets)
        self.drain_seconds = drain_seconds
        self.draining = threading.Event()
        # Inherited by the workers: one still starting ignores it, until its app listens.
        signal.signal(DRAIN_SIGNAL, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda sig, frame: self._drain())

    def keep_subprocess_alive(self) -> None:
        if not self.draining.is_set():
            super().keep_subprocess_alive()

    def handle_hup(self) -> None:
        if not self.draining.is_set():
            super().handle_hup()

    def handle_ttin(self) -> None:
        if not self.draining.is_set():
            super().handle_ttin()

    def _drain(self) -> None:
        if self.draining.is_set():
            self.should_exit.set()  # a second signal: stop now
            return
        self.draining.set()
        threading.Thread(target=self._drain_workers, name="mrmp-drain", daemon=True).start()

    def _drain_workers(self) -> None:
        deadline = time.monotonic() + self.drain_seconds
        while True:
            for process in list(self.processes):
                with contextlib.suppress(ProcessLookupError, TypeError):  # gone, not started
                    os.kill(process.pid, DRAIN_SIGNAL)
            left = deadline - time.monotonic()
            if left <= 0 or self.should_exit.wait(min(DRAIN_REPEAT_S, left)):
                break
        if not self.should_exit.is_set():
            self._stop_accepting()

    def _stop_accepting(self) -> None:
        for listener in self.sockets:
            refuse_new_connections(listener)
        deadline = time.monotonic() + ACCEPT_QUEUE_S
        while not _accept_queue_empty(self.sockets) and time.monotonic() < deadline:
            time.sleep(0.005)
        self.should_exit.set()

"""Dynamic batching: concurrent requests for the same served network run as one network call.

The settings are those of Triton's dynamic batcher (`max_queue_delay_microseconds`, the model's
`max_batch_size`), TorchServe (`max_batch_delay`, `batch_size`) and BentoML (`max_latency_ms`,
`max_batch_size`): a batch is run when it holds `max_size` sequences, or `max_delay_s` after its
first request arrived, whichever comes first. One more rule spares a lone request the wait: a
batch is run at once when every request in flight in this process is already waiting in a batch,
since then no request can join it but a new arrival.

The network runs on the event loop (a call takes a fraction of a millisecond), so a batch is a
list of waiting futures and a timer; no task or thread is needed, and a waiting request is a
request in flight like any other (graceful shutdown waits for it; its timer fires meanwhile).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mrmp.rates import RateKey
from service.host import Served
from service.metrics import Metrics


@dataclass(frozen=True)
class Run:
    """One request's share of a network call: `logits` (B, classes) float32, the call's
    duration `inference_s` and the request's wait in the queue `queue_s` (s)."""

    logits: np.ndarray
    inference_s: float
    queue_s: float


@dataclass
class _Waiting:
    x: np.ndarray
    future: asyncio.Future[Run]
    enqueued: float


@dataclass
class _Batch:
    served: Served
    timer: asyncio.TimerHandle | None = None
    waiting: list[_Waiting] = field(default_factory=list)
    sequences: int = 0


class Batcher:
    """Coalesces the runs of each served network (one pending batch per `RateKey`).

    `max_delay_s` 0 turns batching off: each request runs alone at once. `in_flight()` is the
    number of requests in flight in this process (the data plane's count)."""

    def __init__(
        self, max_size: int, max_delay_s: float, metrics: Metrics, in_flight: Callable[[], int]
    ) -> None:
        self.max_size, self.max_delay_s = max_size, max_delay_s
        self.metrics, self.in_flight = metrics, in_flight
        self._pending: dict[RateKey, _Batch] = {}
        self._waiting = 0  # requests waiting in any pending batch

    async def run(self, served: Served, x: np.ndarray) -> Run:
        """`served.runner` on the (B, J, F) float32 descriptors `x`, in one call with the
        sequences of other requests for the same network; the logits are this request's rows.
        Raises what the runner raised (every request of the failed call gets it)."""
        if self.max_delay_s <= 0 or len(x) >= self.max_size:
            return self._call(served, [(x, time.perf_counter())])[0]
        batch = self._pending.get(served.key)
        if batch is not None and (
            batch.served is not served or batch.sequences + len(x) > self.max_size
        ):
            self._flush(batch)  # full, or the key's network was derived anew meanwhile
            batch = None
        loop = asyncio.get_running_loop()
        if batch is None:
            batch = _Batch(served)
            batch.timer = loop.call_later(self.max_delay_s, self._flush, batch)
            self._pending[served.key] = batch
        waiting = _Waiting(x, loop.create_future(), time.perf_counter())
        batch.waiting.append(waiting)
        batch.sequences += len(x)
        self._waiting += 1
        if batch.sequences >= self.max_size:
            self._flush(batch)
        else:
            self.flush_if_idle()
        return await waiting.future

    def flush_if_idle(self) -> None:
        """Run every pending batch when each request in flight is waiting in one (none other
        can join); the data plane calls this too when a request leaves (a refusal, say)."""
        if self._pending and self._waiting >= self.in_flight():
            for pending in list(self._pending.values()):
                self._flush(pending)

    def _flush(self, batch: _Batch) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
        if self._pending.get(batch.served.key) is batch:
            del self._pending[batch.served.key]
        self._waiting -= len(batch.waiting)
        # A request whose client went away was cancelled while it waited: leave it out.
        waiting = [w for w in batch.waiting if not w.future.done()]
        if not waiting:
            return
        try:
            runs = self._call(batch.served, [(w.x, w.enqueued) for w in waiting])
        except Exception as e:  # the call's requests get the error; none is left waiting
            for w in waiting:
                w.future.set_exception(e)
            return
        for w, run in zip(waiting, runs, strict=True):
            w.future.set_result(run)

    def _call(self, served: Served, parts: list[tuple[np.ndarray, float]]) -> list[Run]:
        """One runner call on the sequences of the parts (descriptors, time enqueued); each
        part's share of the logits."""
        x = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        t0 = time.perf_counter()
        logits = served.runner(x)
        inference_s = time.perf_counter() - t0
        self.metrics.batch_size.observe(len(x))
        runs, start = [], 0
        for part, enqueued in parts:
            self.metrics.batch_queue_wait.observe(t0 - enqueued)
            runs.append(Run(logits[start : start + len(part)], inference_s, t0 - enqueued))
            start += len(part)
        return runs

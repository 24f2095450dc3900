"""Dynamic batching: concurrent requests for the same served network are described together and
run as one network call.

The settings are those of Triton's dynamic batcher (`max_queue_delay_microseconds`, the model's
`max_batch_size`), TorchServe (`max_batch_delay`, `batch_size`) and BentoML (`max_latency_ms`,
`max_batch_size`): a batch is run when it holds `max_size` sequences, or `max_delay_s` after its
first request arrived, whichever comes first. One more rule spares a lone request the wait: a
batch is run at once when every request in flight in this process is already waiting in a batch,
since then no request can join it but a new arrival.

A batch's sequences are made whole and described in one call too (`prepare`): the descriptor's
cost is mostly per call (numpy's), so ten single-sequence requests described together cost less
than half as much as described one by one. When one of them is refused, each request of the
batch is described alone, so that the refusal is its own request's, naming its own sequence,
and the others run. The batch's network is looked up (`network`: derived on a cache miss) only
then, and only when a request of it was described: a refused request derives nothing.

The network runs on the event loop (a call takes a fraction of a millisecond), so a batch is a
list of waiting futures and a timer; no task or thread is needed, and a waiting request is a
request in flight like any other (graceful shutdown waits for it; its timer fires meanwhile).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mrmp.rates import RateKey
from service.errors import ApiError
from service.host import Served
from service.input_rules import InputWarning
from service.metrics import Metrics

# A request's sequences -> their (B, J, F) float32 descriptors and each one's warnings; raises
# the ApiError of the first sequence refused (service.describing).
Prepare = Callable[[Sequence[np.ndarray]], tuple[np.ndarray, list[list[InputWarning]]]]
# A rate key -> its network, whether it was ready (cached or a tier), the derive time (s)
# (service.host.ModelHost.network).
Network = Callable[[RateKey], tuple[Served, bool, float]]


@dataclass(frozen=True)
class Run:
    """One request's share of a network call: `logits` (B, classes) float32 and each sequence's
    `warnings`; the network that ran (`served`; `cache_hit` False for the batch's first request
    when the batch derived it, in `derive_s`, the others shared it); the description of the
    batch's sequences took `describe_s`, the call `inference_s`, and the request waited
    `queue_s` in the queue (s)."""

    logits: np.ndarray
    warnings: list[list[InputWarning]]
    served: Served
    cache_hit: bool
    derive_s: float
    describe_s: float
    inference_s: float
    queue_s: float


@dataclass
class _Waiting:
    sequences: Sequence[np.ndarray]
    future: asyncio.Future[Run]
    enqueued: float


@dataclass
class _Batch:
    key: RateKey
    timer: asyncio.TimerHandle | None = None
    waiting: list[_Waiting] = field(default_factory=list)
    sequences: int = 0


class Batcher:
    """Coalesces the runs of each network (one pending batch per `RateKey`).

    `max_delay_s` 0 turns batching off: each request runs alone at once. `in_flight()` is the
    number of requests in flight in this process (the data plane's count); `prepare` describes
    sequences (`Prepare`), `network` gives a key's network (`Network`)."""

    def __init__(
        self,
        max_size: int,
        max_delay_s: float,
        metrics: Metrics,
        in_flight: Callable[[], int],
        prepare: Prepare,
        network: Network,
    ) -> None:
        self.max_size, self.max_delay_s = max_size, max_delay_s
        self.metrics, self.in_flight = metrics, in_flight
        self.prepare, self.network = prepare, network
        self._pending: dict[RateKey, _Batch] = {}
        self._waiting = 0  # requests waiting in any pending batch

    async def run(self, key: RateKey, sequences: Sequence[np.ndarray]) -> Run:
        """The network of `key` on the descriptors of the (T, J, 3) `sequences`, described and
        run with the sequences of other requests for the same network; the logits and warnings
        are this request's. Raises the request's refusal (`prepare`'s ApiError), or what the
        network's lookup or runner raised (every request of the failed call gets it)."""
        if self.max_delay_s <= 0 or len(sequences) >= self.max_size:
            (run,) = self._call(key, [(sequences, time.perf_counter())])
            if isinstance(run, ApiError):
                raise run
            return run
        batch = self._pending.get(key)
        if batch is not None and batch.sequences + len(sequences) > self.max_size:
            self._flush(batch)  # full
            batch = None
        loop = asyncio.get_running_loop()
        if batch is None:
            batch = _Batch(key)
            batch.timer = loop.call_later(self.max_delay_s, self._flush, batch)
            self._pending[key] = batch
        future: asyncio.Future[Run] = loop.create_future()
        batch.waiting.append(_Waiting(sequences, future, time.perf_counter()))
        batch.sequences += len(sequences)
        self._waiting += 1
        if batch.sequences >= self.max_size:
            self._flush(batch)
        else:
            self.flush_if_idle()
        return await future

    def flush_if_idle(self) -> None:
        """Run every pending batch when each request in flight is waiting in one (none other
        can join); the data plane calls this too when a request leaves (a refusal, say)."""
        if self._pending and self._waiting >= self.in_flight():
            for pending in list(self._pending.values()):
                self._flush(pending)

    def _flush(self, batch: _Batch) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
        if self._pending.get(batch.key) is batch:
            del self._pending[batch.key]
        self._waiting -= len(batch.waiting)
        # A request whose client went away was cancelled while it waited: leave it out.
        waiting = [w for w in batch.waiting if not w.future.done()]
        if not waiting:
            return
        try:
            runs = self._call(batch.key, [(w.sequences, w.enqueued) for w in waiting])
        except Exception as e:  # the call's requests get the error; none is left waiting
            for w in waiting:
                w.future.set_exception(e)
            return
        for w, run in zip(waiting, runs, strict=True):
            if isinstance(run, ApiError):
                w.future.set_exception(run)
            else:
                w.future.set_result(run)

    def _call(
        self, key: RateKey, parts: list[tuple[Sequence[np.ndarray], float]]
    ) -> list[Run | ApiError]:
        """The parts' sequences (each part: sequences, time enqueued) described together
        (`_describe`) and the described ones run in one call of the network of `key`; each
        part's share of the logits and warnings, or its refusal."""
        t0 = time.perf_counter()
        described = self._describe([sequences for sequences, _ in parts])
        t1 = time.perf_counter()
        xs = [d[0] for d in described if not isinstance(d, ApiError)]
        if not xs:  # every part refused: no network is looked up, none derived
            return [d for d in described if isinstance(d, ApiError)]
        served, hit, derive_s = self.network(key)
        x = xs[0] if len(xs) == 1 else np.concatenate(xs)
        t2 = time.perf_counter()
        logits = served.runner(x)
        inference_s = time.perf_counter() - t2
        self.metrics.batch_size.observe(len(x))
        runs: list[Run | ApiError] = []
        start = 0
        for (_, enqueued), d in zip(parts, described, strict=True):
            if isinstance(d, ApiError):
                runs.append(d)
                continue
            self.metrics.batch_queue_wait.observe(t0 - enqueued)
            end = start + len(d[0])
            share = logits[start:end]
            runs.append(
                Run(share, d[1], served, hit, derive_s, t1 - t0, inference_s, t0 - enqueued)
            )
            # As the rate cache answers requests that wait on another's derivation: the first
            # part derived the network, the others shared it.
            hit, derive_s = True, 0.0
            start = end
        return runs

    def _describe(
        self, parts: list[Sequence[np.ndarray]]
    ) -> list[tuple[np.ndarray, list[list[InputWarning]]] | ApiError]:
        """Each part's descriptors and warnings, described in one `prepare` call; when a
        sequence is refused, each part alone, so that a refusal is its own part's."""
        if len(parts) > 1:
            try:
                x, warnings = self.prepare([s for part in parts for s in part])
            except ApiError:  # described again part by part, below
                pass
            else:
                out, start = [], 0
                for part in parts:
                    end = start + len(part)
                    out.append((x[start:end], warnings[start:end]))
                    start = end
                return out
        out = []
        for part in parts:
            try:
                out.append(self.prepare(part))
            except ApiError as e:  # this part's refusal
                out.append(e)
        return out

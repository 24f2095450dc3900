"""The one request path of both protocols: validate -> resolve -> make whole and describe, and
run (with the concurrent requests for the same network, in one description and one network
call: service.batching) -> answer (with each sequence's warnings).

A protocol module (v1 JSON in `routes_v1`, the V2 codec in `v2_codec`) decodes its body into an
`InferenceRequest` and encodes the `Answer`; everything between is here, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.batching import Batcher
from service.describing import describe_request
from service.errors import NotReadyError
from service.host import ModelHost, Served
from service.input_rules import InputRules, InputWarning
from service.metrics import Metrics
from service.policy import Ask, Choice, degrade, resolve


@dataclass(frozen=True)
class InferenceRequest:
    """A decoded request: `sequences` each a numeric (T, J, 3) array whose frame count is
    within the limit; `started` the perf_counter() when the request arrived."""

    sequences: Sequence[np.ndarray]
    ask: Ask
    started: float


@dataclass(frozen=True)
class Answer:
    """What served a request and what it gave: `logits` (B, classes) float32; `warnings` per
    sequence (service.input_rules); times in s."""

    logits: np.ndarray
    warnings: list[list[InputWarning]]
    choice: Choice
    served: Served
    tier: str | None
    cache_hit: bool
    prepare_s: float  # the body decoded and the ask resolved, and its batch described
    derive_s: float
    inference_s: float  # the network call that served it (with the other requests batched in it)

    def probabilities(self) -> np.ndarray:
        """(B, classes) softmax of the logits."""
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def served_fields(self) -> dict[str, object]:
        """What served the request: the same fields in v1 answers and V2 parameters."""
        s = self.served
        return {
            "rate_served": s.key.rate,
            "mode": s.key.mode,
            "observed_rate": round(s.derivation.observed_rate, 6),
            "threshold": s.derivation.prior_threshold if s.key.mode == "prior" else None,
            "kept_params": s.derivation.kept_params,
            "backend": s.runner.backend,
            "cache_hit": self.cache_hit,
        }


class DataPlane:
    def __init__(self, host: ModelHost, metrics: Metrics, rules: InputRules) -> None:
        self.host, self.metrics, self.rules = host, metrics, rules
        settings = host.settings
        self.batcher = Batcher(
            settings.batch_max_size,
            settings.batch_max_delay_ms / 1e3,
            metrics,
            lambda: metrics.active,
            self.describe,
            host.network,
        )

    async def infer(self, request: InferenceRequest) -> Answer:
        """Resolve the network (the policy, then degradation under load), describe the
        sequences, run; raises the request's ApiError when it is refused, NotReadyError (503)
        until the tiers are prepared and timed.

        Only here is a request in flight (the gauge, and the load degradation reads): its body
        is complete and it waits for or runs compute; a slow upload is not load."""
        if not self.host.ready.is_set():
            raise NotReadyError(
                "the model is not ready: its tiers are still being prepared and timed "
                "(GET /v2/health/ready turns 200 when they are)"
            )
        metrics = self.metrics
        metrics.in_flight.inc()
        metrics.active += 1
        try:
            return await self._infer(request)
        finally:
            metrics.in_flight.dec()
            metrics.active -= 1
            self.batcher.flush_if_idle()

    async def _infer(self, request: InferenceRequest) -> Answer:
        host, metrics = self.host, self.metrics
        choice = resolve(request.ask, host.policy, host.table.measured(), len(request.sequences))
        decoded = time.perf_counter()
        await asyncio.sleep(0)  # let queued requests start, so the in-flight count sees them
        choice = degrade(choice, host.policy, metrics.active)
        run = await self.batcher.run(choice.key, request.sequences)
        served = run.served
        if choice.degraded_from is not None:
            metrics.degraded.labels(metrics.label(choice.rate)).inc()
        # Per request, the duration of the call that served it (a batch's, once per request in
        # it): the count stays the request count and live_p50 a request's view.
        metrics.inference_duration.labels(
            metrics.label(served.key.rate), served.key.mode, served.runner.backend
        ).observe(run.inference_s)
        return Answer(
            logits=run.logits,
            warnings=run.warnings,
            choice=choice,
            served=served,
            tier=host.tier_of(served.key),
            cache_hit=run.cache_hit,
            prepare_s=decoded - request.started + run.describe_s,
            derive_s=run.derive_s,
            inference_s=run.inference_s,
        )

    def describe(
        self, sequences: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[list[InputWarning]]]:
        """(B, J, F) float32 descriptors of the sequences made whole, and each one's warnings
        (service.describing)."""
        host = self.host
        return describe_request(
            sequences, self.rules, host.descriptor, host.num_joints, host.input_shape
        )

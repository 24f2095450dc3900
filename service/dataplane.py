"""The one request path of both protocols: validate -> resolve -> run -> answer.

A protocol module (v1 JSON in `routes_v1`, the V2 codec in `v2_codec`) decodes its body into an
`InferenceRequest` and encodes the `Answer`; everything between is here, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mrmp.skeleton import SkeletonError, describe
from mrmp.skeleton.descriptor import NonFiniteSkeletonError
from service.errors import BadShapeError, NonFiniteError
from service.host import ModelHost, Served
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
    """What served a request and what it gave: `logits` (B, classes) float32; times in s."""

    logits: np.ndarray
    choice: Choice
    served: Served
    tier: str | None
    cache_hit: bool
    prepare_s: float  # from arrival to resolved and described (the body's decoding included)
    derive_s: float
    inference_s: float

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
    def __init__(self, host: ModelHost, metrics: Metrics) -> None:
        self.host, self.metrics = host, metrics

    async def infer(self, request: InferenceRequest) -> Answer:
        """Resolve the network (the policy, then degradation under load), describe the
        sequences, run; raises the request's ApiError when it is refused."""
        host = self.host
        choice = resolve(request.ask, host.policy, host.table.measured(), len(request.sequences))
        x = self.describe(request.sequences)
        prepared = time.perf_counter()
        await asyncio.sleep(0)  # let queued requests start, so the in-flight count sees them
        choice = degrade(choice, host.policy, self.metrics.active)
        if choice.degraded_from is not None:
            self.metrics.degraded.labels(self.metrics.label(choice.rate)).inc()
        served, hit, derive_s = host.network(choice.key)
        t0 = time.perf_counter()
        logits = served.runner(x)
        inference_s = time.perf_counter() - t0
        self.metrics.inference_duration.labels(
            self.metrics.label(served.key.rate), served.runner.backend
        ).observe(inference_s)
        host.record_observed(served)
        return Answer(
            logits=logits,
            choice=choice,
            served=served,
            tier=host.tier_of(served.key),
            cache_hit=hit,
            prepare_s=prepared - request.started,
            derive_s=derive_s,
            inference_s=inference_s,
        )

    def describe(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """(B, J, F) float32 descriptors; a sequence that cannot be described is refused,
        named by its index."""
        host = self.host
        x = np.empty((len(sequences), *host.input_shape), dtype=np.float32)
        for i, seq in enumerate(sequences):
            try:
                x[i] = describe(seq, host.descriptor, host.num_joints)
            except NonFiniteSkeletonError as e:
                raise NonFiniteError(f"sequence {i}: {e}") from None
            except SkeletonError as e:
                raise BadShapeError(f"sequence {i}: {e}") from None
        return x

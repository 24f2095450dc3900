"""The rate table (GET /v1/rates, and what the rate policy chooses a need from): a row per
evaluated rate and per tier rate (prior mode), and with exact-mode tiers a row per tier in exact
mode, the network that serves it; each with its accuracy, observed rate, kept parameters, FLOPs
and the compute times measured on this machine at start-up."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np

from mrmp.derive import MagnitudeIndex
from mrmp.gcn import GCNConfig
from mrmp.manifest import Manifest
from mrmp.rates import Mode, RateKey, rate_key
from mrmp.runtime import Runner, median_seconds

# Compute times are measured at these batch sizes; other batches are interpolated between them.
TIMED_BATCHES = (1, 32)


def time_compute(runner: Runner, input_shape: tuple[int, int], repeats: int) -> dict[str, float]:
    """Median compute time (ms) of `runner` on zeros of (batch, *input_shape), per timed batch,
    as {"compute_batch1_p50": ..., "compute_batch32_p50": ...}."""
    latency: dict[str, float] = {}
    for batch in TIMED_BATCHES:
        x = np.zeros((batch, *input_shape), np.float32)
        seconds = median_seconds(lambda x=x: runner(x), repeats)
        latency[f"compute_batch{batch}_p50"] = round(seconds * 1e3, 4)
    return latency


def compute_ms(latency: Mapping[str, float] | None, batch: int) -> float | None:
    """Compute time (ms) for `batch` sequences, interpolated between the batch 1 and 32
    timings; None when `latency` holds none."""
    if not latency or "compute_batch1_p50" not in latency:
        return None
    one, many = latency["compute_batch1_p50"], latency["compute_batch32_p50"]
    return one + (many - one) * (batch - 1) / (TIMED_BATCHES[1] - 1)


@dataclass(frozen=True)
class RateRow:
    """One rate of the table, in `mode`. `accuracy` in percent from the manifest's evaluation
    (None where not evaluated); `latency_ms` the start-up compute times (None until timed)."""

    rate: float
    tier: str | None
    accuracy: float | None
    observed_rate: float
    kept_params: int
    flops: int
    latency_ms: dict[str, float] | None = None
    mode: Mode = "prior"

    @property
    def key(self) -> RateKey:
        return RateKey.of(self.rate, self.mode)


@dataclass(frozen=True)
class TierBackends:
    """Which backend serves a tier, and every candidate's start-up timings."""

    backend: str
    candidates_ms: dict[str, dict[str, float]]


class RateTable:
    """The rows (derived once, on first use) and the timings recorded for them."""

    def __init__(
        self,
        manifest: Manifest,
        index: MagnitudeIndex,
        config: GCNConfig,
        tiers: Mapping[str, float],
        tier_mode: Mode = "prior",
    ) -> None:
        self._manifest, self._index, self._config = manifest, index, config
        self._tiers, self._tier_mode = dict(tiers), tier_mode
        self._timings: dict[RateKey, dict[str, float]] = {}
        self._tier_backends: dict[RateKey, TierBackends] = {}
        self._measured: list[RateRow] | None = None

    @functools.cached_property
    def rows(self) -> list[RateRow]:
        """Every evaluated rate and every tier's rate within the model's range in prior mode,
        sorted; then, with exact-mode tiers, each tier's rate in exact mode."""
        tiers = {round(r, 3): name for name, r in self._tiers.items()}
        prior = sorted({round(float(k), 3) for k in self._manifest.evaluated("prior")} | set(tiers))
        rows = [self._row(rate, "prior", tiers) for rate in prior]
        if self._tier_mode != "prior":
            rows += [self._row(rate, self._tier_mode, tiers) for rate in sorted(tiers)]
        return [row for row in rows if row is not None]

    def _row(self, rate: float, mode: Mode, tiers: dict[float, str]) -> RateRow | None:
        low, high = self._manifest.rate_range
        if not low <= rate <= high:
            return None
        info = self._index.derivation(rate, mode)
        evaluation = self._manifest.evaluated(mode)
        ev = evaluation.get(rate_key(rate)) if abs(rate - round(rate, 2)) < 1e-9 else None
        return RateRow(
            rate=rate,
            tier=tiers.get(rate) if mode == self._tier_mode else None,
            accuracy=ev.accuracy if ev else None,
            observed_rate=round(info.observed_rate, 6),
            kept_params=info.kept_params,
            flops=info.flops(self._config),
            mode=mode,
        )

    def is_timed(self, key: RateKey) -> bool:
        return key in self._timings

    def untimed(self) -> list[float]:
        """The rates whose start-up timings are still missing (all of them before the tiers
        are prepared; a need cannot be met by them until they are timed)."""
        return [row.rate for row in self.rows if row.key not in self._timings]

    def record_timings(self, key: RateKey, latency: dict[str, float]) -> None:
        """The start-up compute times of the network that serves `key`."""
        self._timings[key] = latency
        self._measured = None

    def record_tier(self, key: RateKey, backends: TierBackends) -> None:
        self._tier_backends[key] = backends
        self.record_timings(key, backends.candidates_ms[backends.backend])

    def measured(self) -> list[RateRow]:
        """The rows with their start-up timings (kept until a timing changes: the request path
        reads this)."""
        if self._measured is None:
            self._measured = [
                replace(row, latency_ms=self._timings.get(row.key) or None) for row in self.rows
            ]
        return self._measured

    def answer(
        self, live_p50: Callable[[float, Mode], dict[str, float]]
    ) -> list[dict[str, object]]:
        """The rows as GET /v1/rates shows them: the start-up timings with the live medians of
        the inference histogram (`live_p50(rate, mode)`: the traffic of the row's own rate label
        in its mode; none where it is another rate's label), and for a tier its backend and
        candidates."""
        out = []
        for row in self.rows:
            latency = {**self._timings.get(row.key, {}), **live_p50(row.rate, row.mode)}
            tier = self._tier_backends.get(row.key)
            extra = asdict(tier) if tier is not None else {}
            out.append({**asdict(row), "latency_ms": latency or None, **extra})
        return out

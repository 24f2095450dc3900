"""The served model: the latent model loaded once, derived networks per rate, ONNX tiers.

No HTTP here: `ModelHost` takes descriptors and a rate and returns logits with what served
them, so the same calls back the v1 and V2 routes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mrmp.compact import CompactGCN
from mrmp.derive import Derivation, MagnitudeIndex, PrunedGCN
from mrmp.gcn import GCNConfig
from mrmp.rates import MODES
from mrmp.runtime import (
    ONNX_OPSET,
    OnnxRunner,
    Runner,
    TorchRunner,
    build_runner,
    calibrate,
    export_onnx,
    median_seconds,
)
from mrmp.store import load_model
from service.cache import CacheEvents, Key, RateCache, cache_key
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("mrmp.service")

# ONNX and torch must agree this closely on a tier, or the tier is not served from ONNX.
ONNX_TOLERANCE = 1e-4


@functools.lru_cache(maxsize=8)
def crossover_for(config: GCNConfig, layers: tuple[str, ...]) -> dict[str, float]:
    """The kernel calibration, once per architecture in a process."""
    return calibrate(config, list(layers))


@dataclass
class Served:
    """A derived network ready to run, with how it was derived."""

    runner: Runner
    derivation: Derivation
    key: Key

    @property
    def rate(self) -> float:
        return self.key[0] / 1000

    def nbytes(self) -> int:
        return self.runner.nbytes()


@dataclass
class Options:
    """What network serves a request: the rate as asked, the resolved rate, mode and tier, and
    whether the client lets the server prune more under load."""

    rate_asked: float | None
    rate: float
    mode: str
    tier: str | None
    degradable: bool = False
    degraded_from: float | None = None
    chosen_by: str = "rate"  # rate, tier, default, max_latency_ms or min_accuracy


@dataclass
class Result:
    logits: np.ndarray
    served: Served
    cache_hit: bool
    derive_s: float
    inference_s: float


class ModelHost:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        torch.set_num_threads(settings.torch_threads)
        torch.set_flush_denormal(True)
        self.model, self.manifest = load_model(settings.model_path)
        self.index = MagnitudeIndex(self.model)  # any rate's network in a few milliseconds
        # Per matrix, the density below which CSR beats dense on this machine (measured).
        self.crossover = (
            crossover_for(self.model.config, tuple(sorted(self.model.prunable)))
            if settings.sparse_kernels
            else None
        )
        m = self.manifest  # checked at load: the descriptor fits the architecture
        self.descriptor = m.descriptor_config
        self.rate_min, self.rate_max = m.rate_range
        self.name: str = m.name
        self.version: str = m.version
        self.class_names: list[str] = list(m.class_names)
        self.num_joints: int = self.model.config.num_joints
        for tier, rate in settings.tiers.items():
            if not self.rate_min <= rate <= self.rate_max:
                raise ValueError(
                    f"tier {tier!r} rate {rate} is outside the model's range "
                    f"[{self.rate_min}, {self.rate_max}]"
                )
        self.cache: RateCache[Served] = RateCache(
            settings.cache_max_entries,
            settings.cache_max_bytes,
            Served.nbytes,
            CacheEvents(
                on_hit=lambda k: metrics.cache_events.labels("hit").inc(),
                on_miss=lambda k: metrics.cache_events.labels("miss").inc(),
                on_evict=self._evicted,
                on_change=self._cache_changed,
            ),
        )
        self.tiers: dict[Key, Served] = {}
        self.tier_names: dict[Key, str] = {}
        self.calibrated: dict[Key, dict[str, float]] = {}
        self.backend_timings: dict[Key, dict[str, dict[str, float]]] = {}  # tiers' candidates
        self._rate_rows: list[dict[str, object]] | None = None
        self.ready = threading.Event()

    # -- rates -------------------------------------------------------------------------------

    def resolve(
        self,
        rate: float | None,
        tier: str | None,
        mode: str | None,
        degradable: bool = False,
        need: tuple[str, float] | None = None,
        batch: int = 1,
    ) -> Options:
        """What to serve for a request; raises ValueError with a message. `need` is
        ("max_latency_ms", budget) or ("min_accuracy", floor) instead of a rate or tier."""
        if sum(v is not None for v in (rate, tier, need)) > 1:
            raise ValueError("give one of rate, tier, max_latency_ms or min_accuracy")
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        if need is not None:
            if mode not in (None, "prior"):
                raise ValueError(f"{need[0]} chooses among prior-mode rates: drop mode {mode!r}")
            chosen = self.rate_for(need[0], need[1], batch)
            return Options(None, chosen, "prior", None, degradable, chosen_by=need[0])
        mode = mode or (self.settings.tier_mode if rate is None else "prior")
        if rate is None:
            chosen_by = "tier" if tier else "default"
            tier = tier or self.settings.default_tier
            if tier not in self.settings.tiers:
                raise ValueError(
                    f"unknown tier {tier!r}; known: {', '.join(sorted(self.settings.tiers))}"
                )
            return Options(None, self.settings.tiers[tier], mode, tier, degradable, None, chosen_by)
        if not math.isfinite(rate) or not self.rate_min <= rate <= self.rate_max:
            raise ValueError(
                f"rate {rate} is outside the model's range [{self.rate_min}, {self.rate_max}]"
            )
        return Options(rate, rate, mode, None, degradable)

    def rate_for(self, need: str, value: float, batch: int) -> float:
        """max_latency_ms: the least-pruned rate whose measured compute latency (for this
        batch size) fits the budget; min_accuracy: the most-pruned rate whose evaluated
        accuracy (percent) meets the floor. Rates of the tier table only."""
        # On the request path: the start-up timings only, no histogram scan.
        rows = [r for r in self.rate_table(live=False) if r["latency_ms"] or need == "min_accuracy"]
        if need == "min_accuracy":
            fits = [r for r in rows if r["accuracy"] is not None and r["accuracy"] >= value]
            if not fits:
                best = max((r["accuracy"] or 0.0) for r in rows) if rows else 0.0
                raise ValueError(f"no rate reaches min_accuracy {value}% (the best: {best:.1f}%)")
            return max(r["rate"] for r in fits)
        timed = [(r["rate"], _compute_ms(r["latency_ms"], batch)) for r in rows]
        timed = [(rate, ms) for rate, ms in timed if ms is not None]
        fits = [rate for rate, ms in timed if ms <= value]
        if not fits:
            fastest = min((ms for _, ms in timed), default=float("nan"))
            raise ValueError(
                f"no rate meets max_latency_ms {value} for {batch} sequence(s) "
                f"(the fastest measured: {fastest:.3f} ms)"
            )
        return min(fits)

    def degrade(self, options: Options, in_flight: int) -> Options:
        """Under load (more than `degrade_in_flight` requests in flight), a request that allows
        it is served by the degrade tier, when that tier prunes more than what was asked."""
        s = self.settings
        target = s.tiers[s.degrade_tier]
        if not options.degradable or in_flight <= s.degrade_in_flight or target <= options.rate:
            return options
        self.metrics.degraded.labels(self.metrics.label(target)).inc()
        return replace(
            options, rate=target, mode=s.tier_mode, tier=s.degrade_tier, degraded_from=options.rate
        )

    def network(self, rate: float, mode: str) -> tuple[Served, bool, float]:
        """The derived network for (rate, mode), whether it was ready, and the derive time."""
        key = cache_key(rate, mode)
        tier = self.tiers.get(key)
        if tier is not None:
            return tier, True, 0.0
        spent = [0.0]

        def create() -> Served:
            t0 = time.perf_counter()
            served = self._derive(key)
            spent[0] = time.perf_counter() - t0
            self.metrics.derivation_duration.labels(mode).observe(spent[0])
            return served

        served, hit = self.cache.get(key, create)
        return served, hit, spent[0]

    def _derive(self, key: Key) -> Served:
        net, info = self.index.derive(key[0] / 1000, key[1])
        return Served(self._runner(net, info), info, key)

    def _runner(self, net: PrunedGCN, info: Derivation) -> Runner:
        return build_runner(net, info.layer_rates, self.crossover, self.settings.memory_density)

    def infer(self, x: np.ndarray, rate: float, mode: str) -> Result:
        served, hit, derive_s = self.network(rate, mode)
        t0 = time.perf_counter()
        logits = served.runner(x)
        spent = time.perf_counter() - t0
        self.metrics.inference_duration.labels(
            self.metrics.label(served.rate), served.runner.backend
        ).observe(spent)
        return Result(logits, served, hit, derive_s, spent)

    # -- cache metrics -------------------------------------------------------------------------

    def _evicted(self, key: Key) -> None:
        self.metrics.cache_events.labels("eviction").inc()
        label = self.metrics.label(key[0] / 1000)
        # Another cached rate may share the snapped label; keep the gauge while one does.
        same = (k for k in [*self.cache.snapshot(), *self.tiers] if k[1] == key[1])
        if not any(self.metrics.label(k[0] / 1000) == label for k in same):
            with contextlib.suppress(KeyError):
                self.metrics.observed_rate.remove(label, key[1])

    def _cache_changed(self, entries: int, nbytes: int) -> None:
        self.metrics.cache_entries.set(entries)
        self.metrics.cache_bytes.set(nbytes)

    def record_observed(self, served: Served) -> None:
        self.metrics.observed_rate.labels(self.metrics.label(served.rate), served.key[1]).set(
            served.derivation.observed_rate
        )

    # -- tiers -----------------------------------------------------------------------------------

    def prepare_tiers(self) -> None:
        """Derive every tier, build its candidate runners (torch with the calibrated kernels,
        onnxruntime on the masked and on the compacted network, each export reused while
        current and checked against torch), time them, serve the fastest, and then report
        ready. A candidate that fails is skipped, and a tier with no candidate left is served
        from the rate cache like any other rate; no failure keeps the others from being ready."""
        try:
            folder = self._tier_folder()
            for name, rate in self.settings.tiers.items():
                key = cache_key(rate, self.settings.tier_mode)
                self.tier_names[key] = name
                try:
                    served = self._prepare_tier(folder, name, key)
                except Exception:
                    log.exception("tier %s could not be prepared; the rate cache serves it", name)
                    continue
                self.tiers[key] = served
                self.record_observed(served)
            self._measure_rates()
        except Exception:  # a broken tier must not take the service down
            log.exception("tier preparation failed; tiers fall back to the rate cache")
        self.ready.set()

    def _prepare_tier(self, folder: Path, name: str, key: Key) -> Served:
        net, info = self.index.derive(key[0] / 1000, key[1])
        runners: list[Runner] = []
        try:
            runners.append(self._runner(net, info))
        except Exception:
            log.exception("tier %s: torch kernels failed; trying plain torch", name)
            runners.append(TorchRunner(net))
        if self.settings.onnx_tiers and self.settings.tier_backend != "torch":
            runners += self._onnx_tiers(folder, name, net, key)
        return self._fastest([Served(runner, info, key) for runner in runners])

    def _fastest(self, candidates: list[Served]) -> Served:
        """Time each candidate (one that fails is dropped); keep the fastest, at batch
        `tier_batch`, of those `tier_backend` allows (of all that ran, when none of those did).
        Every timing is kept for the tier table."""
        timings: dict[str, dict[str, float]] = {}
        ran: list[Served] = []
        for served in candidates:
            try:
                timings[served.runner.backend] = self._time(served.runner)
            except Exception:
                log.exception("tier candidate %s failed when run; dropped", served.runner.backend)
                continue
            ran.append(served)
        if not ran:
            raise RuntimeError("no candidate runner works")
        wanted = self.settings.tier_backend
        allowed = [s for s in ran if wanted == "fastest" or s.runner.backend.startswith(wanted)]
        chosen = min(
            allowed or ran,
            key=lambda s: _compute_ms(timings[s.runner.backend], self.settings.tier_batch),
        )
        self.backend_timings[chosen.key] = timings
        self.calibrated[chosen.key] = timings[chosen.runner.backend]
        return chosen

    def _tier_folder(self) -> Path:
        folder = self.settings.tier_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            fallback = Path(tempfile.mkdtemp(prefix="mrmp-tiers-"))
            log.warning("tier folder %s is not writable (%s); using %s", folder, e, fallback)
            folder = fallback
        return folder

    def _onnx_tiers(self, folder: Path, name: str, net: PrunedGCN, key: Key) -> list[OnnxRunner]:
        """ONNX runners of a tier: the masked network, and the compacted one when compaction
        shrinks a matrix; any export that fails or disagrees with torch is left out."""
        modules: dict[str, torch.nn.Module] = {"": net}
        try:
            compact = CompactGCN(net)
            if compact.compacted:
                modules["compact"] = compact
        except Exception:
            log.exception("tier %s: compaction failed; no compacted candidate", name)
        runners = []
        for variant, module in modules.items():
            stem = f"{name}.{variant}" if variant else name
            try:
                runner = self._onnx_tier(folder, stem, module, net, key)
            except Exception:  # this candidate is skipped; the others go on
                log.exception("tier %s: ONNX export or load failed", stem)
                continue
            if runner is not None:
                runners.append(runner)
        return runners

    def _onnx_tier(
        self, folder: Path, stem: str, module: torch.nn.Module, net: PrunedGCN, key: Key
    ) -> OnnxRunner | None:
        """The tier's export of `module` (reused while its stamp is current), loaded and
        checked against the masked network in torch; None when they disagree."""
        path = folder / f"{stem}.onnx"
        sidecar = folder / f"{stem}.json"
        compacted = isinstance(module, CompactGCN)
        stamp = {
            "model_version": self.version,
            "rate": key[0] / 1000,
            "mode": key[1],
            "compacted": module.compacted if compacted else [],
            "torch": torch.__version__,
            "opset": ONNX_OPSET,
        }
        current = path.is_file() and sidecar.is_file() and _read_json(sidecar) == stamp
        probe = np.random.default_rng(0).standard_normal(
            (4, self.num_joints, self.descriptor.feature_dim()), dtype=np.float32
        )
        expected = TorchRunner(net)(probe)
        backend = "onnxruntime-compact" if compacted else "onnxruntime"
        for attempt in ("reuse", "rebuild") if current else ("rebuild",):
            if attempt == "rebuild":
                log.info(
                    "exporting tier %s (rate %.3f, %s) to %s", stem, key[0] / 1000, key[1], path
                )
                export_onnx(module, path)
                sidecar.write_text(json.dumps(stamp, indent=1) + "\n")
            runner = OnnxRunner(path, self.settings.onnx_threads, backend)
            diff = float(np.abs(runner(probe) - expected).max())
            if diff <= ONNX_TOLERANCE:
                return runner
            # A reused export made by other code (same stamp) is rebuilt once.
            log.warning("tier %s: ONNX differs from torch by %g (%s)", stem, diff, attempt)
        log.error("tier %s: the fresh ONNX export differs from torch; not served", stem)
        return None

    def _time(self, runner: Runner, repeats: int = 25) -> dict[str, float]:
        """Run a network a few times; its median compute time at batch 1 and 32."""
        latency: dict[str, float] = {}
        for batch in (1, 32):
            x = np.zeros((batch, self.num_joints, self.descriptor.feature_dim()), np.float32)
            seconds = median_seconds(lambda x=x: runner(x), repeats)
            latency[f"compute_batch{batch}_p50"] = round(seconds * 1e3, 4)
        return latency

    def _measure_rates(self) -> None:
        """Time every rate of the tier table that is not a tier, as it would be served."""
        for row in self.rate_table(live=False):
            key = cache_key(row["rate"], "prior")
            if key not in self.calibrated:
                self.calibrated[key] = self._time(self._derive(key).runner, repeats=10)

    def tier_of(self, key: Key) -> str | None:
        """The tier whose prepared network serves this key, if any."""
        return self.tier_names.get(key) if key in self.tiers else None

    # -- the tier table --------------------------------------------------------------------------

    def rate_table(self, live: bool = True) -> list[dict[str, object]]:
        """A row per tier and per evaluated rate (prior mode), sorted by rate, with the
        start-up timings and (`live`) the median from the inference histogram."""
        if self._rate_rows is None:
            self._rate_rows = self._static_rows()
        rows = []
        for row in self._rate_rows:
            key = cache_key(row["rate"], "prior")
            latency = dict(self.calibrated.get(key, {}))
            if live:
                latency.update(self.metrics.live_p50(row["rate"]))
            extra = {}
            if key in self.tiers:  # which backend serves the tier, and what the others timed
                extra = {
                    "backend": self.tiers[key].runner.backend,
                    "candidates_ms": self.backend_timings.get(key),
                }
            rows.append({**row, "latency_ms": latency or None, **extra})
        return rows

    def _static_rows(self) -> list[dict[str, object]]:
        evaluation = self.manifest.evaluated("prior")
        tiers = {round(r, 3): name for name, r in self.settings.tiers.items()}
        rates = sorted({round(float(k), 3) for k in evaluation} | set(tiers))
        config = self.model.config
        rows = []
        for rate in rates:
            if not self.rate_min <= rate <= self.rate_max:
                continue
            info = self.index.derivation(rate, "prior")
            ev = evaluation.get(f"{rate:.2f}") if abs(rate - round(rate, 2)) < 1e-9 else None
            rows.append(
                {
                    "rate": rate,
                    "tier": tiers.get(rate),
                    "accuracy": ev.accuracy if ev else None,
                    "observed_rate": round(info.observed_rate, 6),
                    "kept_params": info.kept_params,
                    "flops": info.flops(config),
                }
            )
        return rows


def _compute_ms(latency: dict[str, float] | None, batch: int) -> float | None:
    """Compute time for `batch` sequences, interpolated between the batch 1 and 32 timings."""
    if not latency or "compute_batch1_p50" not in latency:
        return None
    one, many = latency["compute_batch1_p50"], latency["compute_batch32_p50"]
    return one + (many - one) * (batch - 1) / 31


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

"""The served model: the latent model loaded once, the network derived per `RateKey` (from the
tiers prepared at start-up, else from the rate cache), and the cache's metrics.

No HTTP here: the data plane asks the host for a network and runs it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass

import torch

from mrmp.derive import Derivation, MagnitudeIndex, PrunedGCN
from mrmp.gcn import GCNConfig
from mrmp.rates import RateKey
from mrmp.runtime import Runner, build_runner, calibrate
from mrmp.store import load_model
from mrmp.trunk import warm_sessions
from service.metrics import Metrics
from service.policy import RatePolicy
from service.rate_cache import CacheEvents, RateCache
from service.rate_table import RateTable, TierBackends, time_compute
from service.settings import Settings
from service.tiers import TierPreparer

log = logging.getLogger("mrmp.service")


@functools.lru_cache(maxsize=8)
def crossover_for(config: GCNConfig, layers: tuple[str, ...]) -> dict[str, float]:
    """The kernel calibration, once per architecture in a process."""
    return calibrate(config, list(layers))


@dataclass
class Served:
    """A derived network ready to run, with how it was derived."""

    runner: Runner
    derivation: Derivation
    key: RateKey

    def nbytes(self) -> int:
        return self.runner.nbytes()


class ModelHost:
    """Loads and checks the store (StoreError names the file); a tier outside the model's rate
    range is refused with ValueError."""

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
        self.name: str = m.name
        self.version: str = m.version
        self.class_names: list[str] = list(m.class_names)
        self.num_joints: int = self.model.config.num_joints
        self.policy = RatePolicy.of(settings, m.rate_range)
        self.table = RateTable(
            m, self.index, self.model.config, self.policy.tiers, settings.tier_mode
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
        self.tiers: dict[RateKey, Served] = {}
        self.tier_names: dict[RateKey, str] = {}
        self.ready = threading.Event()

    @property
    def input_shape(self) -> tuple[int, int]:
        """One sequence's descriptor: (joints, features)."""
        return self.num_joints, self.descriptor.feature_dim()

    def network(self, key: RateKey) -> tuple[Served, bool, float]:
        """The derived network for `key`, whether it was ready, and the derive time (s)."""
        tier = self.tiers.get(key)
        if tier is not None:
            self.metrics.cache_events.labels("hit").inc()  # as the answer's cache_hit says
            return tier, True, 0.0
        spent = [0.0]

        def create() -> Served:
            t0 = time.perf_counter()
            served = self._derive(key)
            spent[0] = time.perf_counter() - t0
            self.metrics.derivation_duration.labels(key.mode).observe(spent[0])
            # Recorded as it enters the cache, which forgets it at eviction (never after).
            self.record_observed(served)
            return served

        served, hit = self.cache.get(key, create)
        return served, hit, spent[0]

    def tier_of(self, key: RateKey) -> str | None:
        """The tier whose prepared network serves this key, if any."""
        return self.tier_names.get(key) if key in self.tiers else None

    def _derive(self, key: RateKey) -> Served:
        """A rate's network as the cache serves it: on the architecture's shared onnxruntime
        graphs with its weights bound (no export per rate), fc on CSR when it is sparse
        (mrmp.trunk), unless ONNX_TIERS is off (then on torch)."""
        net, info = self.index.derive(key.rate, key.mode)
        threads = self.settings.onnx_threads if self.settings.onnx_tiers else None
        runner = build_runner(
            net, info.layer_rates, self.crossover, self.settings.memory_density, threads
        )
        return Served(runner, info, key)

    def _runner(self, net: PrunedGCN, info: Derivation) -> Runner:
        """A tier's torch candidate (service.tiers): the calibrated kernels on torch."""
        return build_runner(net, info.layer_rates, self.crossover, self.settings.memory_density)

    # -- start-up ----------------------------------------------------------------------------

    def prepare_tiers(self) -> None:
        """Derive every tier and serve it by its fastest candidate (service.tiers), time every
        other rate of the table, then report ready. A tier that cannot be prepared is served
        from the rate cache like any other rate; no failure keeps the others from being ready."""
        try:
            if self.settings.onnx_tiers:
                warm_sessions(self.model.config, self.settings.onnx_threads)
            preparer = TierPreparer(self.settings, self.version, self.input_shape, self._runner)
            for name, rate in self.policy.tiers.items():
                key = RateKey.of(rate, self.settings.tier_mode)
                self.tier_names[key] = name
                if key in self.tiers:  # tiers clamped to one rate share its network
                    continue
                try:
                    net, info = self.index.derive(key.rate, key.mode)
                    tier = preparer.prepare(name, key, net, info)
                except Exception:
                    log.exception("tier %s could not be prepared; the rate cache serves it", name)
                    continue
                served = Served(tier.runner, info, key)
                self.tiers[key] = served
                self.table.record_tier(key, TierBackends(tier.runner.backend, tier.candidates_ms))
                self.record_observed(served)
            self._time_rates()
        except Exception:  # a broken tier must not take the service down
            log.exception("tier preparation failed; tiers fall back to the rate cache")
        self.ready.set()

    def _time_rates(self) -> None:
        """Time every rate of the table that is not a tier, as it would be served."""
        for row in self.table.rows:
            if not self.table.is_timed(row.key):
                runner = self._derive(row.key).runner
                self.table.record_timings(
                    row.key, time_compute(runner, self.input_shape, repeats=10)
                )

    # -- metrics of the served networks --------------------------------------------------------

    def record_observed(self, served: Served) -> None:
        """The gauge of the network's observed rate, for a rate on the label grid: one off the
        grid (0.504) would overwrite the series of the grid's rate (0.50) it is labelled with."""
        label = self.metrics.grid_label(served.key.rate)
        if label is not None:
            self.metrics.observed_rate.set(label, served.key.mode, served.derivation.observed_rate)

    def _evicted(self, key: RateKey) -> None:
        self.metrics.cache_events.labels("eviction").inc()
        label = self.metrics.grid_label(key.rate)
        if label is not None:
            self.metrics.observed_rate.remove(label, key.mode)

    def _cache_changed(self, entries: int, nbytes: int) -> None:
        self.metrics.cache_entries.set(entries)
        self.metrics.cache_bytes.set(nbytes)

"""Prometheus metrics (prefix mrmp_), one registry per app.

Durations are histograms in seconds with buckets for CPU milliseconds. The `rate` label is
snapped to a grid (0.01 by default) so that its cardinality stays bounded whatever rates
clients send.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

# With several worker processes, prometheus-client keeps every value in files under this
# folder and /metrics merges them (its multiprocess mode); `mrmp serve --workers N` sets it.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
INFERENCE_HISTOGRAM = "mrmp_inference_duration_seconds"


def multiprocess_mode() -> bool:
    return MULTIPROC_ENV in os.environ


def forget_dead_workers(directory: Path) -> None:
    """Mark every process that left live-gauge files in `directory` and is gone (or a zombie
    its supervisor has not reaped yet) dead, so the live gauges are the live workers' alone.
    Run at scrape time: whatever restarts a worker (uvicorn's supervisor,
    a crash) need not tell us."""
    dead = set()
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            dead.add(int(pid))
    for pid in dead:
        mark_process_dead(pid, str(directory))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"  # the state follows the command name


# 50 us .. 2.5 s: a cached inference is sub-millisecond, a derivation a few ms, a big batch more.
BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
# Sequences per network call: powers of two up to the largest request (max_sequences 64) and
# beyond, for a batch_max_size set higher.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def rate_label(rate: float, step: float = 0.01) -> str:
    """The rate snapped to the label grid, e.g. 0.9312 -> "0.93"."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{round(rate / step) * step:.{decimals}f}"


class Metrics:
    def __init__(self, rate_step: float = 0.01) -> None:
        self.rate_step = rate_step
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.request_duration = Histogram(
            "mrmp_request_duration_seconds",
            "Time from request received to answer, by endpoint",
            ["endpoint"],
            buckets=BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            INFERENCE_HISTOGRAM,
            "Network execution time per request (of the batched call that served it), by "
            "served rate (snapped), mode and backend",
            ["rate", "mode", "backend"],
            buckets=BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "mrmp_batch_size",
            "Sequences per network call (requests coalesced by dynamic batching)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_queue_wait = Histogram(
            "mrmp_batch_queue_wait_seconds",
            "Time a request waited for its batch's network call, per request",
            buckets=BUCKETS,
            registry=r,
        )
        self.derivation_duration = Histogram(
            "mrmp_derivation_duration_seconds",
            "Time to derive the pruned network of an uncached rate",
            ["mode"],
            buckets=BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "mrmp_requests",
            "Requests by endpoint and HTTP status",
            ["endpoint", "status"],
            registry=r,
        )
        self.cache_events = Counter(
            "mrmp_cache_events", "Rate cache hits, misses and evictions", ["event"], registry=r
        )
        self.degraded = Counter(
            "mrmp_degraded_requests",
            "Requests served at a higher pruning rate because of load, by served rate",
            ["rate"],
            registry=r,
        )
        self.errors = Counter("mrmp_errors", "Rejected requests by reason", ["reason"], registry=r)
        # Across workers: in-flight requests and cache sizes add up (each worker has its own
        # cache); an observed rate is the same in every worker.
        self.in_flight = Gauge(
            "mrmp_in_flight_requests",
            "Requests being served",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_entries = Gauge(
            "mrmp_cache_entries",
            "Derived networks cached",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_bytes = Gauge(
            "mrmp_cache_bytes",
            "Bytes held by cached networks",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.observed_rate = ObservedRates(
            Path(os.environ[MULTIPROC_ENV]) if multiprocess_mode() else None
        )
        r.register(self.observed_rate)

    # Requests in flight in this process: the load signal for degradation.
    active: int = 0

    def label(self, rate: float) -> str:
        return rate_label(rate, self.rate_step)

    def grid_label(self, rate: float) -> str | None:
        """The rate's label when the rate is on the label grid, else None: a rate off the
        grid shares its label with the grid's own rate, whose series it must not overwrite."""
        label = self.label(rate)
        return label if abs(float(label) - rate) <= 1e-9 else None

    def exposition(self) -> bytes:
        """The Prometheus text of this process, or of all workers in multiprocess mode."""
        if not multiprocess_mode():
            return generate_latest(self.registry)
        directory = Path(os.environ[MULTIPROC_ENV])
        forget_dead_workers(directory)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        merged.register(ObservedRates.of_workers(directory))
        return generate_latest(merged)

    def live_p50(self) -> Callable[[float, str], dict[str, float]]:
        """The median inference time (ms) per backend of a rate and mode, `(rate, mode) ->
        {"<backend>_live_p50": ms}`, from the inference histogram as it is now, of every
        worker in multiprocess mode (interpolated within its bucket, as PromQL's
        histogram_quantile does); none for a rate off the label grid (its label is another
        rate's)."""
        buckets: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = {}
        for metric in self._inference_histograms():
            for s in metric.samples:
                of = s.labels
                if s.name.endswith("_bucket"):
                    backends = buckets.setdefault((of["rate"], of["mode"]), {})
                    backends.setdefault(of["backend"], []).append((float(of["le"]), s.value))

        def of(rate: float, mode: str = "prior") -> dict[str, float]:
            label = self.grid_label(rate)
            if label is None:
                return {}
            out = {}
            for backend, pairs in buckets.get((label, mode), {}).items():
                pairs.sort()
                total = pairs[-1][1]
                if total > 0:
                    out[f"{backend}_live_p50"] = round(_quantile(pairs, 0.5 * total) * 1e3, 4)
            return out

        return of

    def _inference_histograms(self) -> Iterator[Metric]:
        if not multiprocess_mode():
            yield from self.inference_duration.collect()
            return
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        yield from (m for m in merged.collect() if m.name == INFERENCE_HISTOGRAM)


class ObservedRates(Collector):
    """The gauge mrmp_observed_rate{rate, mode}: the observed rate of each network made (a
    tier, a cached rate) at a rate on the label grid and not evicted since. A collector of its
    own, not a prometheus-client Gauge, since with several workers (multiprocess mode) a Gauge
    cannot forget a series: here each worker writes its networks' to a file of its own in
    `directory` when they change, and a scrape merges the files of the live workers
    (`of_workers`)."""

    NAME = "mrmp_observed_rate"
    HELP = "Fraction of prunable weights pruned, per cached rate on the label grid and mode"

    def __init__(self, directory: Path | None = None) -> None:
        self.values: dict[tuple[str, str], float] = {}
        self.path = directory / f"observed_rates_{os.getpid()}.json" if directory else None
        self._lock = threading.Lock()  # the tiers are recorded from their preparing thread

    def set(self, rate: str, mode: str, value: float) -> None:
        if self.values.get((rate, mode)) != value:
            with self._lock:
                self.values[rate, mode] = value
                self._save()

    def remove(self, rate: str, mode: str) -> None:
        with self._lock:
            if self.values.pop((rate, mode), None) is not None:
                self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps([[*key, value] for key, value in self.values.items()]))
        partial.replace(self.path)  # a scrape reads the whole file, never part of it

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["rate", "mode"])
        with self._lock:
            values = sorted(self.values.items())
        for (rate, mode), value in values:
            family.add_metric([rate, mode], value)
        yield family

    @classmethod
    def of_workers(cls, directory: Path) -> ObservedRates:
        """The networks of every live worker that wrote its file in `directory` (an observed
        rate is the same in every worker); the files of workers gone are deleted."""
        merged = cls()
        for path in directory.glob("observed_rates_*.json"):
            pid = path.stem.rpartition("_")[2]
            if pid.isdigit() and not _alive(int(pid)):
                path.unlink(missing_ok=True)
                continue
            try:
                rows = json.loads(path.read_text())
            except (FileNotFoundError, ValueError):  # gone meanwhile
                continue
            for rate, mode, value in rows:
                merged.values[rate, mode] = value
        return merged


def _quantile(pairs: list[tuple[float, float]], rank: float) -> float:
    lower_le, lower_count = 0.0, 0.0
    for le, count in pairs:
        if count >= rank:
            if math.isinf(le):
                return lower_le
            width = count - lower_count
            return lower_le + (le - lower_le) * ((rank - lower_count) / width if width else 0)
        lower_le, lower_count = le, count
    return lower_le

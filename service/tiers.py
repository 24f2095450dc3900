"""Fixed tiers and their candidate runners: torch on the calibrated kernels, onnxruntime on
the ONNX export of the masked network and of the compacted one, and, where the head is sparse,
the blocks' export on onnxruntime with the fc layer on CSR (each export reused while its
stamp is current, and checked against torch); every candidate is timed and the fastest serves.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrmp.compact import CompactGCN
from mrmp.derive import Derivation, PrunedGCN
from mrmp.rates import RateKey
from mrmp.runtime import (
    MEMORY_DENSITY,
    ONNX_OPSET,
    GCNTrunk,
    OnnxRunner,
    Runner,
    TorchRunner,
    export_onnx,
    sparse_layers,
)
from mrmp.trunk import SplitRunner
from service.rate_table import compute_ms, time_compute
from service.settings import Settings

log = logging.getLogger("mrmp.service")

# ONNX and torch must agree this closely on a tier, or the tier is not served from ONNX.
ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class PreparedTier:
    """The runner that serves a tier, and every candidate's start-up timings by backend."""

    runner: Runner
    candidates_ms: dict[str, dict[str, float]]


def tier_folder(settings: Settings) -> Path:
    """Where tier exports are written: the settings' folder, or a fresh temporary one when that
    is not writable."""
    folder = settings.tier_folder()
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


class TierPreparer:
    """Prepares tiers of one model: `input_shape` is a sequence's (joints, features) and
    `torch_runner` the service's runner builder."""

    def __init__(
        self,
        settings: Settings,
        model_version: str,
        input_shape: tuple[int, int],
        torch_runner: Callable[[PrunedGCN, Derivation], Runner],
    ) -> None:
        self.settings, self.model_version = settings, model_version
        self.input_shape, self.torch_runner = input_shape, torch_runner
        self.folder = tier_folder(settings)

    def prepare(self, name: str, key: RateKey, net: PrunedGCN, info: Derivation) -> PreparedTier:
        """The tier's fastest working candidate; RuntimeError when none runs."""
        runners: list[Runner] = []
        try:
            runners.append(self.torch_runner(net, info))
        except Exception:
            log.exception("tier %s: torch kernels failed; trying plain torch", name)
            runners.append(TorchRunner(net))
        if self.settings.onnx_tiers and self.settings.tier_backend != "torch":
            runners += self._onnx_candidates(name, net, key, info)
        return self._fastest(runners)

    def _fastest(self, runners: list[Runner]) -> PreparedTier:
        """Time each candidate (one that fails is dropped); keep the fastest, at batch
        `tier_batch`, of those `tier_backend` allows (of all that ran, when none of those did)."""
        timings: dict[str, dict[str, float]] = {}
        ran: list[Runner] = []
        for runner in runners:
            try:
                timings[runner.backend] = time_compute(runner, self.input_shape, repeats=25)
            except Exception:
                log.exception("tier candidate %s failed when run; dropped", runner.backend)
                continue
            ran.append(runner)
        if not ran:
            raise RuntimeError("no candidate runner works")
        wanted = self.settings.tier_backend
        allowed = [r for r in ran if wanted == "fastest" or r.backend.startswith(wanted)]

        def compute_time(runner: Runner) -> float:
            ms = compute_ms(timings[runner.backend], self.settings.tier_batch)
            return ms if ms is not None else float("inf")

        return PreparedTier(min(allowed or ran, key=compute_time), timings)

    def _onnx_candidates(
        self, name: str, net: PrunedGCN, key: RateKey, info: Derivation
    ) -> list[Runner]:
        """ONNX runners of a tier: the masked network; the compacted one when compaction
        shrinks a matrix; the split one (mrmp.trunk: fc on CSR, the rest on onnxruntime) when
        fc is at or below the memory density. Any export that fails or disagrees with torch is
        left out."""
        threads = self.settings.onnx_threads
        modules: dict[str, tuple[PrunedGCN | CompactGCN | GCNTrunk, Callable[[Path], Runner]]]
        modules = {"": (net, lambda path: OnnxRunner(path, threads))}
        try:
            compact = CompactGCN(net)
            if compact.compacted:
                modules["compact"] = (
                    compact,
                    lambda path: OnnxRunner(path, threads, "onnxruntime-compact"),
                )
        except Exception:
            log.exception("tier %s: compaction failed; no compacted candidate", name)
        sparse_head = sparse_layers({"fc": info.layer_rates.get("fc", 0.0)}, {}, MEMORY_DENSITY)
        if sparse_head:
            modules["split"] = (
                GCNTrunk(net),
                lambda path: SplitRunner(path, net, sparse_head, threads),
            )
        runners: list[Runner] = []
        for variant, (module, make_runner) in modules.items():
            stem = f"{name}.{variant}" if variant else name
            try:
                runner = self._onnx_candidate(stem, variant, module, net, key, make_runner)
            except Exception:  # this candidate is skipped; the others go on
                log.exception("tier %s: ONNX export or load failed", stem)
                continue
            if runner is not None:
                runners.append(runner)
        return runners

    def _onnx_candidate(
        self,
        stem: str,
        variant: str,
        module: PrunedGCN | CompactGCN | GCNTrunk,
        net: PrunedGCN,
        key: RateKey,
        make_runner: Callable[[Path], Runner],
    ) -> Runner | None:
        """The tier's export of `module` (reused while its stamp is current), loaded by
        `make_runner` and checked against the masked network in torch; None when they
        disagree."""
        path = self.folder / f"{stem}.onnx"
        sidecar = self.folder / f"{stem}.json"
        stamp = {
            "model_version": self.model_version,
            "rate": key.rate,
            "mode": key.mode,
            "variant": variant,
            "compacted": module.compacted if isinstance(module, CompactGCN) else [],
            "torch": torch.__version__,
            "opset": ONNX_OPSET,
        }
        current = path.is_file() and sidecar.is_file() and _read_json(sidecar) == stamp
        probe = np.random.default_rng(0).standard_normal((4, *self.input_shape), dtype=np.float32)
        expected = TorchRunner(net)(probe)
        for attempt in ("reuse", "rebuild") if current else ("rebuild",):
            if attempt == "rebuild":
                log.info("exporting tier %s (rate %.3f, %s) to %s", stem, key.rate, key.mode, path)
                export_onnx(module, path)
                sidecar.write_text(json.dumps(stamp, indent=1) + "\n")
            runner = make_runner(path)
            diff = float(np.abs(runner(probe) - expected).max())
            if diff <= ONNX_TOLERANCE:
                return runner
            # A reused export made by other code (same stamp) is rebuilt once.
            log.warning("tier %s: ONNX differs from torch by %g (%s)", stem, diff, attempt)
        log.error("tier %s: the fresh ONNX export differs from torch; not served", stem)
        return None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

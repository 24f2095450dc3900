"""Compute benchmark of derived networks: latency per rate and backend at batch 1 and 32,
the time to derive an uncached rate (1M and 4M parameters), and the memory of a cached network
against its kept weights. Writes compute.json.

    python -m bench.compute --model model_store/sbu-mrmp --out docs/benchmarks
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mrmp.compact import CompactGCN
from mrmp.derive import MagnitudeIndex
from mrmp.gcn import LatentGCN
from mrmp.runtime import (
    MEMORY_DENSITY,
    GCNTrunk,
    OnnxRunner,
    TorchRunner,
    build_runner,
    calibrate,
    export_onnx,
    median_seconds,
    sparse_layers,
)
from mrmp.store import load_model
from mrmp.trunk import SplitRunner

RATES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
BACKENDS = (
    "masked_dense",
    "sparse",
    "compact",
    "onnxruntime",
    "onnxruntime_compact",
    "onnxruntime_split",
    "onnxruntime_shared",
)
BATCHES = (1, 32)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    return median_seconds(fn, repeats) * 1e3


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    return f"{cpu}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


# Rounds of the latency measurement: every (rate, backend, batch) is timed once per round, so
# that the load of a shared machine drifting during the run falls on every cell alike.
ROUNDS = 5


def latency(model: LatentGCN, tmp: Path, repeats: int) -> dict:
    """Per rate and backend, the median call time (ms) at each batch size: the median over
    `ROUNDS` interleaved rounds of the median over repeats / ROUNDS calls."""
    index = MagnitudeIndex(model)
    crossover = calibrate(model.config, sorted(model.prunable))
    rows, runners = {}, {}
    for rate in RATES:
        net, info = index.derive(rate)
        served = build_runner(net, info.layer_rates, crossover)  # as the service runs it
        compact = CompactGCN(net)
        # fc on CSR at or below the memory density, as the tiers choose it.
        split_head = sparse_layers({"fc": info.layer_rates["fc"]}, {}, MEMORY_DENSITY)
        trunk = export_onnx(GCNTrunk(net), tmp / f"{rate}.t.onnx")
        key = f"{rate:.2f}"
        runners[key] = {
            "masked_dense": TorchRunner(net),
            "sparse": served,
            "compact": TorchRunner(compact),
            "onnxruntime": OnnxRunner(export_onnx(net, tmp / f"{rate}.onnx")),
            "onnxruntime_compact": OnnxRunner(export_onnx(compact, tmp / f"{rate}.c.onnx")),
            "onnxruntime_split": SplitRunner(trunk, net, split_head),
            # What a cached rate runs with the blocks on the shared session (mrmp.trunk).
            "onnxruntime_shared": build_runner(net, info.layer_rates, crossover, trunk_threads=1),
        }
        rows[key] = {
            "observed_rate": info.observed_rate,
            "sparse_layers": sorted(getattr(served, "csr", {})),
            "compacted_layers": compact.compacted,
            "split_sparse_layers": sorted(split_head),
            "memory_bytes": {k: r.nbytes() for k, r in runners[key].items()},
            "kept_params": info.kept_params,
            "kept_weight_bytes": 4 * info.kept_params,
            "flops": info.flops(model.config),
        }
    inputs = {
        batch: np.random.default_rng(0).standard_normal(
            (batch, model.config.num_joints, model.config.in_features), dtype=np.float32
        )
        for batch in BATCHES
    }
    times: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(ROUNDS):
        for key, by_backend in runners.items():
            for batch, x in inputs.items():
                for name, runner in by_backend.items():
                    ms = median_ms(lambda r=runner, x=x: r(x), max(1, repeats // ROUNDS))
                    times.setdefault((key, name, batch), []).append(ms)
    for (key, name, batch), ms in times.items():
        rows[key][f"{name}_b{batch}_ms"] = round(float(np.median(ms)), 4)
    dense = rows["0.00"]
    for row in rows.values():
        for batch in BATCHES:
            base = dense[f"masked_dense_b{batch}_ms"]
            for name in BACKENDS:
                row[f"speedup_{name}_b{batch}"] = round(base / row[f"{name}_b{batch}_ms"], 2)
    return {"crossover": crossover, "rates": rows}


def derivation(model: LatentGCN, repeats: int) -> dict:
    """Median time to derive an uncached rate (uniform in [0.5, 0.99]) per mode, and in prior
    mode the whole service path: derive, then build the runner on the calibrated kernels."""
    index = MagnitudeIndex(model)
    crossover = calibrate(model.config, sorted(model.prunable), repeats=10)
    rng = np.random.default_rng(0)

    def derive_and_build(rate: float, trunk_threads: int | None = None) -> None:
        net, info = index.derive(rate, "prior")
        build_runner(net, info.layer_rates, crossover, trunk_threads=trunk_threads)

    derive_and_build(0.5, trunk_threads=1)  # the shared session is built once per process
    steps = {
        "prior": lambda r: index.derive(r, "prior"),
        "exact": lambda r: index.derive(r, "exact"),
        "prior_with_runner": derive_and_build,
        "prior_with_shared_runner": lambda r: derive_and_build(r, trunk_threads=1),
    }
    out = {}
    for name, step in steps.items():
        times = []
        for r in rng.uniform(0.5, 0.99, repeats):
            t0 = time.perf_counter()
            step(float(r))
            times.append(time.perf_counter() - t0)
        out[name] = round(float(np.median(times)) * 1e3, 3)
    return out


def run(model_path: Path, out: Path, repeats: int = 200, threads: int = 1) -> dict:
    """Measure, write `out`/compute.json, and return it."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    model, manifest = load_model(model_path)
    big = LatentGCN(replace(model.config, hidden=2048), model.adjacency, model.prior)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rates = latency(model, Path(tmp), repeats)
    result = {
        "command": f"python -m bench.compute --model {model_path} --out {out} "
        f"--repeats {repeats} --threads {threads}",
        "machine": machine(),
        "model": {
            "name": manifest.name,
            "version": manifest.version,
            "params": model.num_params(),
        },
        "latency": rates,
        "derivation_ms": {
            str(model.num_params()["total"]): derivation(model, 50),
            str(big.num_params()["total"]): derivation(big, 50),
        },
    }
    (out / "compute.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model_store/sbu-mrmp"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    result = run(args.model, args.out, args.repeats, args.threads)
    print(json.dumps(result["derivation_ms"]))
    for key, row in result["latency"]["rates"].items():
        print(key, {k: v for k, v in row.items() if k.endswith("_ms")})


if __name__ == "__main__":
    main()

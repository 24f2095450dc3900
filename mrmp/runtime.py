"""Execution backends for a derived network: torch, and onnxruntime over an exported tier.

A runner maps descriptors (B, J, F) float32 to logits (B, classes) float32, both numpy, so the
service never needs to know which backend answered.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from mrmp.compact import CompactGCN
from mrmp.derive import PrunedGCN
from mrmp.gcn import GCNConfig, gcn_forward, gcn_trunk

ONNX_OPSET = 17

# Set once at import: catch_warnings() is not thread-safe, and runners are built from threads.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


class Runner(Protocol):
    """Descriptors (B, J, F) float32 -> logits (B, classes) float32; `backend` names the
    kernels that answered and `nbytes` the memory the runner holds."""

    backend: str

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def nbytes(self) -> int: ...


class TorchRunner:
    """Runs a derived network with torch (no autograd)."""

    backend = "torch"

    def __init__(self, net: PrunedGCN | CompactGCN) -> None:
        self.net = net.eval()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.net(torch.from_numpy(x)).numpy()

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.net.buffers())


class SparseRunner:
    """A derived network whose chosen weight matrices run as CSR sparse matmuls (int32
    indices), the others dense; it holds only what it runs, so its memory follows the kept
    weights. The forward is `gcn_forward`, with a `linear` that dispatches per matrix."""

    backend = "torch-sparse"

    def __init__(self, net: PrunedGCN, sparse: set[str]) -> None:
        params = net.params()
        self.config: GCNConfig = net.config
        self.adjacency = net.adjacency
        self.csr = {name: csr32(params[name]) for name in sparse}
        self.params = {n: p for n, p in params.items() if n not in self.csr}

    def linear(self, name: str, h: Tensor) -> Tensor:
        w = self.csr.get(name)
        if w is None:
            return h @ self.params[name].T
        flat = h.reshape(-1, h.shape[-1])
        return torch.sparse.mm(w, flat.T).T.reshape(*h.shape[:-1], w.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = gcn_forward(
                self.params, self.adjacency, torch.from_numpy(x), self.config, self.linear
            )
            return out.numpy()

    def nbytes(self) -> int:
        dense = sum(p.numel() * p.element_size() for p in self.params.values())
        sparse = sum(
            t.numel() * t.element_size()
            for w in self.csr.values()
            for t in (w.values(), w.col_indices(), w.crow_indices())
        )
        return dense + sparse + self.adjacency.numel() * self.adjacency.element_size()


def csr32(w: Tensor) -> Tensor:
    """CSR with int32 indices (half the index memory of the default int64), built in one pass
    over the nonzeros (`to_sparse_csr` and an int32 copy take about twice as long)."""
    kept = w != 0
    flat = kept.reshape(-1).nonzero().view(-1)
    crow = torch.zeros(w.shape[0] + 1, dtype=torch.int32)
    torch.cumsum(kept.sum(1, dtype=torch.int32), 0, out=crow[1:])
    return torch.sparse_csr_tensor(
        crow,
        (flat % w.shape[1]).to(torch.int32),
        w.reshape(-1)[flat],
        size=w.shape,
        check_invariants=False,  # row-major nonzeros: a valid CSR by construction
    )


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# Densities at which the calibration compares the two kernels.
CALIBRATION_DENSITIES = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01)


def calibrate(
    config: GCNConfig,
    layers: list[str],
    batches: tuple[int, ...] = (1, 32),
    repeats: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Per weight matrix, the density below which the CSR matmul beats the dense one on this
    machine, at every batch size given (0 where it never does). Measured, not guessed: a few
    hundred milliseconds at start-up."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {name: shape for name, (shape, _, _) in config.weight_shapes().items()}
    crossover: dict[str, float] = {}
    with torch.inference_mode():
        for name in layers:
            out_f, in_f = shapes[name]
            w = torch.randn(out_f, in_f, generator=gen)
            best = 0.0
            for density in CALIBRATION_DENSITIES:  # from dense to sparse
                keep = torch.rand(out_f, in_f, generator=gen) < density
                wd, ws = w * keep, csr32(w * keep)
                wins = True
                for batch in batches:
                    rows = batch if name in ("fc", "classifier") else batch * config.num_joints
                    h = torch.randn(rows, in_f, generator=gen)
                    dense = median_seconds(lambda h=h, wd=wd: h @ wd.T, repeats)
                    sparse = median_seconds(lambda h=h, ws=ws: torch.sparse.mm(ws, h.T).T, repeats)
                    wins = wins and sparse < dense
                if wins:
                    best = density
                    break
            crossover[name] = best
    return crossover


# At or below this density a matrix is held as CSR even where dense kernels are a little faster,
# so that a cached network's memory follows its kept weights (CSR: 8 bytes per kept weight, so
# at this density a quarter of the dense matrix, plus the row pointers).
MEMORY_DENSITY = 0.125


def sparse_layers(
    layer_rates: dict[str, float],
    crossover: dict[str, float],
    memory_density: float = MEMORY_DENSITY,
) -> set[str]:
    """The matrices to hold and run sparse: those whose kept density is at or below their
    calibrated crossover, or at or below `memory_density`."""
    return {
        name
        for name, rate in layer_rates.items()
        if 1.0 - rate <= max(crossover.get(name, 0.0), memory_density)
    }


def build_runner(
    net: PrunedGCN,
    layer_rates: dict[str, float],
    crossover: dict[str, float] | None,
    memory_density: float = MEMORY_DENSITY,
    trunk_threads: int | None = None,
) -> Runner:
    """The runner of a derived network, as the service builds it: each matrix on the kernel
    calibrated fastest for its density (`crossover`, from `calibrate`), or CSR at or below
    `memory_density`; `crossover=None` (sparse kernels off) runs every matrix dense. With
    `trunk_threads`, the network runs on the architecture's shared onnxruntime graphs with that
    many threads, fc on CSR when it is among the sparse matrices (`mrmp.trunk`); without, on
    torch. `layer_rates` is the Derivation's fraction pruned per matrix."""
    sparse = set() if crossover is None else sparse_layers(layer_rates, crossover, memory_density)
    if trunk_threads is not None:
        from mrmp.trunk import SharedTrunkRunner  # mrmp.trunk builds on this module

        return SharedTrunkRunner(net, sparse, trunk_threads)
    return SparseRunner(net, sparse) if sparse else TorchRunner(net)


class GCNTrunk(nn.Module):
    """The blocks of a derived network (`gcn_trunk`): (B, J, F) -> features (B, J * width)."""

    def __init__(self, net: PrunedGCN) -> None:
        super().__init__()
        self.net = net
        self.config = net.config

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return gcn_trunk(self.net.params(), self.net.adjacency, x, self.config)


def export_onnx(net: PrunedGCN | CompactGCN | GCNTrunk, path: Path) -> Path:
    """Write the network as ONNX with a dynamic batch axis: input `x`, output `logits`
    (`features` for a `GCNTrunk`).

    Uses the TorchScript exporter: about 0.2 s per tier against 3.3 s for the torch.export one
    (measured on this GCN), and the graph is a plain sequence of matmuls either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    c = net.config
    example = torch.zeros(1, c.num_joints, c.in_features)
    output = "features" if isinstance(net, GCNTrunk) else "logits"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # workers may export at once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # The compacted network's Pad exports as a Slice the folder does not fold: harmless.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            net,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["x"],
            output_names=[output],
            dynamic_axes={"x": {0: "batch"}, output: {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    tmp.replace(path)  # atomic: a reader never sees a half-written file
    return path


class OnnxRunner:
    """Runs an exported tier with onnxruntime, with explicit thread settings: `output` names
    the graph output returned (`features` for an exported `GCNTrunk`)."""

    def __init__(
        self,
        path: Path,
        intra_op_threads: int = 1,
        backend: str = "onnxruntime",
        output: str = "logits",
    ) -> None:
        self.backend = backend
        self.path, self.output = Path(path), output
        self.session = self.session_of(str(path), intra_op_threads)

    @staticmethod
    def session_of(model: str | bytes, intra_op_threads: int = 1):  # -> ort.InferenceSession
        """An onnxruntime CPU session of `model` (a path or the graph's bytes): sequential,
        one inter-op thread, `intra_op_threads` for each op, every graph optimization."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {"x": x})[0]

    def nbytes(self) -> int:
        return self.path.stat().st_size

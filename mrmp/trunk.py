"""Split runners: the network's dense parts on onnxruntime, its fc layer as a CSR matmul.

The fc layer holds 96% of the weights, and onnxruntime has no sparse kernel that beats its
dense matmul here (com.microsoft SparseToDenseMatMul at 2% density: 0.39 ms against 0.48 ms
dense at batch 32), while a CSR matmul (scipy) costs 0.015 ms at batch 1 and 0.13 ms at batch
32. So a split runner runs the blocks (`gcn_trunk`) on onnxruntime, the fc matmul on scipy
when fc is sparse, and the rest of the head (`gcn_head`: fc bias, normalization, classifier)
on onnxruntime again; compute then follows the kept weights of the fc layer.

The head graphs, and the blocks of a cached rate, are exported once per architecture with
their weights as graph inputs: a runner binds its own weights (onnxruntime I/O binding, once
per thread), so a cached rate needs no export. Passing the weights by name at every call
instead doubles the blocks' batch-1 latency (0.15 ms against 0.08 ms, measured).
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse
import torch
from torch import Tensor, nn

from mrmp.derive import PrunedGCN
from mrmp.gcn import GCNConfig, gcn_head, gcn_trunk
from mrmp.runtime import ONNX_OPSET, OnnxRunner, csr32


def graph_inputs(config: GCNConfig, part: str) -> list[str]:
    """The parameters a shared graph takes after its data input, in order: `part` is
    "blocks" (after `x` and `adjacency`), "head" or "head_after_fc" (after `features`).
    Weight matrices are taken as stored, (out, in): bound without a copy."""
    names = [*config.weight_shapes(), *config.dense_shapes()]
    if part == "blocks":
        return [n for n in names if n.startswith("blocks.")]
    head = [n for n in names if not n.startswith("blocks.")]
    return [n for n in head if n != "fc"] if part == "head_after_fc" else head


class _Part(nn.Module):
    """`gcn_trunk` or `gcn_head` with every parameter an input; "head_after_fc" takes the fc
    matmul's output and applies the rest of the head."""

    def __init__(self, config: GCNConfig, part: str) -> None:
        super().__init__()
        self.config, self.part = config, part
        self.names = graph_inputs(config, part)

    def forward(self, data: Tensor, *tensors: Tensor) -> Tensor:
        if self.part == "blocks":
            adjacency, *tensors = tensors
        params = dict(zip(self.names, tensors, strict=True))

        def linear(name: str, h: Tensor) -> Tensor:
            # In head_after_fc, fc is no input: its CSR matmul ran before the graph.
            return h if name not in params else h @ params[name].T

        if self.part == "blocks":
            return gcn_trunk(params, adjacency, data, self.config, linear)
        return gcn_head(params, data, self.config, linear)


def _export(config: GCNConfig, part: str) -> bytes:
    """The ONNX graph of `_Part` (dynamic batch axis), in memory."""
    module = _Part(config, part)
    shapes = {n: s for n, (s, _, _) in config.weight_shapes().items()}
    params = [
        torch.zeros(shapes[n] if n in shapes else config.dense_shapes()[n]) for n in module.names
    ]
    j = config.num_joints
    if part == "blocks":
        data, extra, names = (
            torch.zeros(1, j, config.in_features),
            [torch.zeros(j, j)],
            ["x", "adjacency"],
        )
    else:
        width = config.hidden if part == "head_after_fc" else j * config.width
        data, extra, names = torch.zeros(1, width), [], ["features"]
    out = "features" if part == "blocks" else "logits"
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (data, *extra, *params),
            buffer,
            dynamo=False,
            input_names=[*names, *module.names],
            output_names=[out],
            dynamic_axes={names[0]: {0: "batch"}, out: {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    return buffer.getvalue()


_sessions: dict[tuple[GCNConfig, str, int], object] = {}
_sessions_lock = threading.Lock()


def shared_session(config: GCNConfig, part: str, intra_op_threads: int = 1):  # -> InferenceSession
    """The process's onnxruntime session of `part` of `config` (see `graph_inputs`), built on
    first use (0.2 s for the blocks, 0.01 s for a head); onnxruntime sessions run
    concurrently."""
    key = (config, part, intra_op_threads)
    with _sessions_lock:
        if key not in _sessions:
            _sessions[key] = OnnxRunner.session_of(_export(config, part), intra_op_threads)
        return _sessions[key]


def warm_sessions(config: GCNConfig, intra_op_threads: int = 1) -> None:
    """Build the shared sessions of `config` now (at start-up), so that no request waits for
    them."""
    for part in ("blocks", "head", "head_after_fc"):
        shared_session(config, part, intra_op_threads)


class _Bound:
    """A shared session with a runner's parameters bound, per thread: data -> output."""

    def __init__(self, session, data: str, output: str, inputs: dict[str, np.ndarray]) -> None:
        import onnxruntime as ort

        self.session, self.data, self.output, self.inputs = session, data, output, inputs
        self._values = {n: ort.OrtValue.ortvalue_from_numpy(a) for n, a in inputs.items()}
        self._local = threading.local()

    def __call__(self, data: np.ndarray) -> np.ndarray:
        binding = getattr(self._local, "binding", None)
        if binding is None:
            binding = self._local.binding = self.session.io_binding()
            for name, value in self._values.items():
                binding.bind_ortvalue_input(name, value)
        binding.bind_cpu_input(self.data, np.ascontiguousarray(data, dtype=np.float32))
        binding.bind_output(self.output)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.inputs.values())


def _weights(net: PrunedGCN, names: list[str]) -> dict[str, np.ndarray]:
    """The named parameters as numpy arrays sharing the network's memory."""
    params = net.params()
    return {n: np.ascontiguousarray(params[n].detach().numpy()) for n in names}


class _Head:
    """The head of a derived network: fc on scipy CSR when `sparse_fc`, the rest (or all of
    it) on the architecture's shared head graph. Features (B, J * width) -> logits."""

    def __init__(self, net: PrunedGCN, sparse_fc: bool, intra_op_threads: int) -> None:
        part = "head_after_fc" if sparse_fc else "head"
        session = shared_session(net.config, part, intra_op_threads)
        self.graph = _Bound(
            session, "features", "logits", _weights(net, graph_inputs(net.config, part))
        )
        self.fc = None
        if sparse_fc:
            w = csr32(net.params()["fc"].detach())
            arrays = (w.values(), w.col_indices(), w.crow_indices())
            self.fc = scipy.sparse.csr_matrix(tuple(t.numpy() for t in arrays), shape=w.shape)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if self.fc is not None:
            features = (self.fc @ features.T).T
        return self.graph(features)

    def nbytes(self) -> int:
        fc = (
            0
            if self.fc is None
            else sum(a.nbytes for a in (self.fc.data, self.fc.indices, self.fc.indptr))
        )
        return self.graph.nbytes() + fc


class SharedTrunkRunner:
    """A derived network on shared graphs only (no export per rate): its blocks and its head
    with its own weights bound, fc on CSR when "fc" is in `sparse`. Answers equal
    `gcn_forward`'s within float rounding (1e-5 on logits, tested)."""

    def __init__(self, net: PrunedGCN, sparse: set[str], intra_op_threads: int = 1) -> None:
        # "split" when fc runs apart, as CSR, between the blocks' and the head's graphs.
        self.backend = "onnxruntime-shared-split" if "fc" in sparse else "onnxruntime-shared"
        session = shared_session(net.config, "blocks", intra_op_threads)
        inputs = {"adjacency": net.adjacency.detach().numpy()}
        inputs.update(_weights(net, graph_inputs(net.config, "blocks")))
        self.blocks = _Bound(session, "x", "features", inputs)
        self.head = _Head(net, "fc" in sparse, intra_op_threads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.head(self.blocks(x))

    def nbytes(self) -> int:
        """The weights and adjacency this runner binds, and its fc matrix as CSR."""
        return self.blocks.nbytes() + self.head.nbytes()


class SplitRunner:
    """A tier's split runner: its blocks from its own export of `GCNTrunk` (weights constant,
    so onnxruntime prepacks them: faster than bound inputs), its head as `SharedTrunkRunner`'s."""

    def __init__(
        self,
        trunk_path: Path,
        net: PrunedGCN,
        sparse: set[str],
        intra_op_threads: int = 1,
        backend: str = "onnxruntime-split",
    ) -> None:
        self.backend = backend
        self.trunk = OnnxRunner(trunk_path, intra_op_threads, backend, output="features")
        self.head = _Head(net, "fc" in sparse, intra_op_threads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.head(self.trunk(x))

    def nbytes(self) -> int:
        """The trunk's file, the head's bound weights and its fc matrix as CSR."""
        return self.trunk.nbytes() + self.head.nbytes()

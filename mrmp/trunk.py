"""The blocks of any derived network on one onnxruntime session per architecture.

The blocks' weights and the adjacency are inputs of the exported graph, not constants, so one
export serves every rate: a cached rate's runner binds its own weights (no export, no session
per rate) and runs the head (`gcn_head`: the fc layer, 96% of the weights, and the classifier)
on torch with CSR kernels where they are sparse, so that the head's compute follows its kept
weights. Weights are bound once per thread (onnxruntime I/O binding): passing them by name at
every call doubles the batch-1 latency of the blocks (0.15 ms against 0.08 ms, measured).
"""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
import torch
from torch import Tensor, nn

from mrmp.derive import PrunedGCN
from mrmp.gcn import GCNConfig, gcn_trunk
from mrmp.runtime import HEAD_LAYERS, ONNX_OPSET, SparseRunner


def trunk_inputs(config: GCNConfig) -> list[str]:
    """The names of the blocks' parameters, in the exported graph's input order (after `x`
    and `adjacency`); weight matrices are taken transposed, (in, out), as the matmul uses them."""
    shapes = config.weight_shapes()
    return [name for name in (*shapes, *config.dense_shapes()) if name.startswith("blocks.")]


class _Blocks(nn.Module):
    """`gcn_trunk` with every parameter an input: (x, adjacency, *params) -> features."""

    def __init__(self, config: GCNConfig) -> None:
        super().__init__()
        self.config = config
        self.names = trunk_inputs(config)

    def forward(self, x: Tensor, adjacency: Tensor, *tensors: Tensor) -> Tensor:
        params = dict(zip(self.names, tensors, strict=True))
        return gcn_trunk(params, adjacency, x, self.config, lambda name, h: h @ params[name])


def _export(config: GCNConfig) -> bytes:
    """The ONNX graph of `_Blocks` (dynamic batch axis), in memory."""
    module = _Blocks(config)
    shapes = config.weight_shapes()
    example = [
        torch.zeros(shapes[n][0][::-1] if n in shapes else config.dense_shapes()[n])
        for n in module.names
    ]
    x = torch.zeros(1, config.num_joints, config.in_features)
    adjacency = torch.zeros(config.num_joints, config.num_joints)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (x, adjacency, *example),
            buffer,
            dynamo=False,
            input_names=["x", "adjacency", *module.names],
            output_names=["features"],
            dynamic_axes={"x": {0: "batch"}, "features": {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    return buffer.getvalue()


_sessions: dict[tuple[GCNConfig, int], object] = {}
_sessions_lock = threading.Lock()


def trunk_session(config: GCNConfig, intra_op_threads: int = 1):  # -> ort.InferenceSession
    """The process's onnxruntime session of the blocks of `config` (built on first use:
    about 0.3 s; thread-safe: onnxruntime sessions run concurrently)."""
    import onnxruntime as ort

    key = (config, intra_op_threads)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(
                _export(config), options, providers=["CPUExecutionProvider"]
            )
            _sessions[key] = session
    return session


class SharedTrunkRunner:
    """A derived network: its blocks on the shared session of its architecture, with its own
    weights bound; its head on torch, CSR for the head matrices in `sparse`. Answers equal
    `gcn_forward`'s within float rounding (1e-5 on logits, tested)."""

    backend = "onnxruntime-shared-split"

    def __init__(self, net: PrunedGCN, sparse: set[str], intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        self.session = trunk_session(net.config, intra_op_threads)
        params = net.params()
        self.inputs = {"adjacency": net.adjacency.detach().numpy()}
        for name in trunk_inputs(net.config):
            p = params[name].detach()
            self.inputs[name] = np.ascontiguousarray((p.T if p.dim() == 2 else p).numpy())
        self._values = {n: ort.OrtValue.ortvalue_from_numpy(a) for n, a in self.inputs.items()}
        self._local = threading.local()
        self.head = SparseRunner(net, sparse & set(HEAD_LAYERS))
        self.head.params = {n: p for n, p in self.head.params.items() if n not in self.inputs}

    def _binding(self):  # -> ort.IOBinding
        binding = getattr(self._local, "binding", None)
        if binding is None:
            binding = self.session.io_binding()
            for name, value in self._values.items():
                binding.bind_ortvalue_input(name, value)
            self._local.binding = binding
        return binding

    def features(self, x: np.ndarray) -> np.ndarray:
        """The blocks: descriptors (B, J, F) float32 -> features (B, J * width)."""
        binding = self._binding()
        binding.bind_cpu_input("x", np.ascontiguousarray(x, dtype=np.float32))
        binding.bind_output("features")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.head.head(self.features(x))

    def nbytes(self) -> int:
        """The blocks' weights and adjacency this runner binds, and its head's matrices."""
        head = sum(p.numel() * p.element_size() for p in self.head.params.values()) + sum(
            t.numel() * t.element_size()
            for w in self.head.csr.values()
            for t in (w.values(), w.col_indices(), w.crow_indices())
        )
        return sum(a.nbytes for a in self.inputs.values()) + head

"""Compaction: a derived network whose pruned weight matrices are rebuilt smaller.

In each pruned weight matrix, rows with no kept weight (units with no inputs) and columns with
no kept weight (inputs that no unit uses) are removed, so the matmul is smaller; the dead
outputs are put back as zeros by one gather. The ops (Gather, Pad, MatMul) export to ONNX, so
an onnxruntime tier runs the smaller layers too (onnxruntime would expand a sparse initializer
back to dense). A matrix that would shrink little stays as it is.

Whole units cannot be taken out of the network: every block and the fc layer end in a
LayerNorm whose mean and variance include a dead unit's constant output (its bias), so the unit
still shifts the others, and its normalized output still feeds the next layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrmp.derive import PrunedGCN
from mrmp.gcn import GCNConfig, gcn_forward

# A matrix is compacted when removing its dead rows and columns leaves at most this share of it.
COMPACT_AREA = 0.8


class DenseKernel(nn.Module):
    """The plain matmul h @ W.T, for a matrix left as it is."""

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", w.detach().clone())

    def forward(self, h: Tensor) -> Tensor:
        return h @ self.weight.T


def _live(w: Tensor) -> tuple[Tensor, Tensor]:
    """Indices of the rows and of the columns that hold a kept weight (at least one each, so
    that an all-pruned matrix is a 1 x 1 zero matmul, not an empty one)."""
    kept = w != 0
    rows, cols = kept.any(1).nonzero().flatten(), kept.any(0).nonzero().flatten()
    return (rows if len(rows) else rows.new_zeros(1)), (cols if len(cols) else cols.new_zeros(1))


class CompactKernel(nn.Module):
    """The matmul over live rows and columns only; dead outputs are zeros."""

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        rows, cols = _live(w)
        out_features, in_features = w.shape
        self.select_cols = len(cols) < in_features
        self.scatter_rows = len(rows) < out_features
        self.register_buffer("weight", w.detach()[rows][:, cols].clone())
        self.register_buffer("cols", cols)
        # Each output's position in [compact outputs, one zero], for the gather that restores
        # the full width.
        source = torch.full((out_features,), len(rows), dtype=torch.long)
        source[rows] = torch.arange(len(rows))
        self.register_buffer("source", source)

    def forward(self, h: Tensor) -> Tensor:
        if self.select_cols:
            h = h.index_select(-1, self.cols)
        y = h @ self.weight.T
        if self.scatter_rows:
            y = F.pad(y, (0, 1)).index_select(-1, self.source)
        return y


def worth_compacting(w: Tensor, compact_area: float = COMPACT_AREA) -> bool:
    """Whether w's live rows x live columns are at most `compact_area` of its size."""
    rows, cols = _live(w)
    return len(rows) * len(cols) <= compact_area * w.numel()


class CompactGCN(nn.Module):
    """A derived network with its prunable matrices compacted where that shrinks them; the
    forward is `gcn_forward`, so its outputs equal the masked network's (within rounding)."""

    def __init__(self, net: PrunedGCN, compact_area: float = COMPACT_AREA) -> None:
        super().__init__()
        self.config: GCNConfig = net.config
        params = net.params()
        shapes = self.config.weight_shapes()
        self.compacted = sorted(
            name
            for name, (_, prunable, _) in shapes.items()
            if prunable and worth_compacting(params[name], compact_area)
        )
        self.matrices = nn.ModuleDict(
            {
                _key(name): (CompactKernel if name in self.compacted else DenseKernel)(params[name])
                for name in shapes
            }
        )
        self.names = [n for n in params if n not in shapes]  # biases, normalization
        for i, name in enumerate(self.names):
            self.register_buffer(f"p{i}", params[name].detach().clone())
        self.register_buffer("adjacency", net.adjacency.detach().clone())

    def linear(self, name: str, h: Tensor) -> Tensor:
        return self.matrices[_key(name)](h)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        params = {name: getattr(self, f"p{i}") for i, name in enumerate(self.names)}
        return gcn_forward(params, self.adjacency, x, self.config, self.linear)


def _key(name: str) -> str:
    return name.replace(".", "__")

"""The skeleton GCN (METHOD section 6) built on latent-weight layers.

The architecture is one functional forward, `gcn_forward`, over a dict of effective
parameters. The trainable `LatentGCN` computes those parameters from its latent weights
through a gate (dense, soft band-stop, or fixed masks); a derived network holds them as
plain tensors. Both run the very same forward, so training, evaluation and serving agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrmp.bandstop import bandstop
from mrmp.priors import Prior


@dataclass(frozen=True)
class GCNConfig:
    """Architecture: blocks of [single-head attention over the nodes, graph convolution with
    `filters` filters of `channels_per_filter` channels], then one fully connected layer and
    the classifier."""

    num_joints: int
    in_features: int
    num_classes: int
    filters: int = 8
    channels_per_filter: int = 8
    blocks: int = 3
    attention_dim: int = 16
    hidden: int = 512
    prune_classifier: bool = False
    # Weight matrices with fewer weights stay dense: at high rates a tiny layer (the attention
    # projections, the first block) would keep a handful of weights and cut the signal [ours].
    min_prunable_weights: int = 2048

    @property
    def width(self) -> int:
        return self.filters * self.channels_per_filter

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GCNConfig:
        return cls(**d)

    def weight_shapes(self) -> dict[str, tuple[tuple[int, ...], bool, float]]:
        """Every weight matrix: name -> (shape, prunable, gain for its fixed scale)."""
        shapes: dict[str, tuple[tuple[int, ...], bool, float]] = {}
        c_in = self.in_features
        relu = math.sqrt(2.0)
        for i in range(self.blocks):
            p = f"blocks.{i}."
            shapes[p + "query"] = ((self.attention_dim, c_in), True, 1.0)
            shapes[p + "key"] = ((self.attention_dim, c_in), True, 1.0)
            for support in ("root", "bone", "attn"):
                shapes[p + support] = ((self.width, c_in), True, relu)
            c_in = self.width
        shapes["fc"] = ((self.hidden, self.num_joints * self.width), True, relu)
        shapes["classifier"] = ((self.num_classes, self.hidden), self.prune_classifier, 1.0)
        return {
            name: (shape, prunable and math.prod(shape) >= self.min_prunable_weights, gain)
            for name, (shape, prunable, gain) in shapes.items()
        }

    def flops(self, kept: dict[str, int] | None = None) -> int:
        """Floating-point operations (2 x multiply-adds) of one sample's forward, counting only
        the `kept` weights of each matrix (all of a matrix not named)."""
        kept = kept or {}
        j = self.num_joints
        macs = 0
        for name, (shape, _, _) in self.weight_shapes().items():
            per_sample = 1 if name in ("fc", "classifier") else j  # node-wise layers run J times
            macs += kept.get(name, math.prod(shape)) * per_sample
        # Mixing over nodes in each block: attention scores, then attention and bone products.
        macs += self.blocks * (j * j * self.attention_dim + 2 * j * j * self.width)
        return 2 * macs

    def dense_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameters that are never pruned (biases, normalization), with their shapes."""
        shapes: dict[str, tuple[int, ...]] = {}
        for i in range(self.blocks):
            p = f"blocks.{i}."
            shapes[p + "bias"] = (self.width,)
            shapes[p + "norm.weight"] = (self.width,)
            shapes[p + "norm.bias"] = (self.width,)
        shapes["fc.bias"] = (self.hidden,)
        shapes["fc_norm.weight"] = (self.hidden,)
        shapes["fc_norm.bias"] = (self.hidden,)
        shapes["classifier.bias"] = (self.num_classes,)
        return shapes


def normalized_adjacency(adjacency: Tensor) -> Tensor:
    """D^{-1/2} (A + I) D^{-1/2} of the skeleton's bone graph."""
    a = adjacency.float() + torch.eye(adjacency.shape[0])
    d = a.sum(dim=1).rsqrt()
    return d[:, None] * a * d[None, :]


# A weight matrix applied to the last axis of h: (name, h) -> h @ W[name].T, however stored.
Linear = Callable[[str, Tensor], Tensor]


def _dense_linear(params: dict[str, Tensor]) -> Linear:
    """The default `Linear`: the dense h @ W.T of each matrix in `params`."""

    def linear(name: str, h: Tensor) -> Tensor:
        return h @ params[name].T

    return linear


def gcn_forward(
    params: dict[str, Tensor],
    adjacency: Tensor,
    x: Tensor,
    config: GCNConfig,
    linear: Linear | None = None,
) -> Tensor:
    """Logits (B, classes) for node descriptors x (B, J, F); `params` holds effective weights.

    Weight matrices are applied through `linear` (default: dense `h @ W.T` from `params`), so
    a runner may hold some of them in another format (sparse) without another forward. The
    forward is `gcn_head` after `gcn_trunk`, so a runner may also run the two on different
    backends.
    """
    linear = linear or _dense_linear(params)
    return gcn_head(params, gcn_trunk(params, adjacency, x, config, linear), config, linear)


def gcn_trunk(
    params: dict[str, Tensor],
    adjacency: Tensor,
    x: Tensor,
    config: GCNConfig,
    linear: Linear | None = None,
) -> Tensor:
    """The blocks of `gcn_forward`: node descriptors x (B, J, F) -> the flattened node
    features (B, J * width) that the fc layer takes."""
    linear = linear or _dense_linear(params)
    h = x
    scale = 1.0 / math.sqrt(config.attention_dim)
    for i in range(config.blocks):
        p = f"blocks.{i}."
        q = linear(p + "query", h)
        k = linear(p + "key", h)
        attention = torch.softmax((q @ k.transpose(1, 2)) * scale, dim=-1)
        m = (
            linear(p + "root", h)
            + adjacency @ linear(p + "bone", h)
            + attention @ linear(p + "attn", h)
            + params[p + "bias"]
        )
        m = F.layer_norm(m, (config.width,), params[p + "norm.weight"], params[p + "norm.bias"])
        h = F.relu(m)
    return h.reshape(h.shape[0], -1)


def gcn_head(
    params: dict[str, Tensor], h: Tensor, config: GCNConfig, linear: Linear | None = None
) -> Tensor:
    """The fc layer and the classifier of `gcn_forward`: (B, J * width) -> logits (B, classes)."""
    linear = linear or _dense_linear(params)
    f = linear("fc", h) + params["fc.bias"]
    f = F.relu(F.layer_norm(f, (config.hidden,), params["fc_norm.weight"], params["fc_norm.bias"]))
    return linear("classifier", f) + params["classifier.bias"]


# A gate maps (weight name, latent Z) to the multiplier of Z for that weight.
Gate = Callable[[str, Tensor], Tensor]


def dense_gate(name: str, z: Tensor) -> Tensor:
    return torch.ones_like(z)


class SoftGate:
    """The training-time band-stop psi_{a,sigma}, applied to every prunable weight."""

    def __init__(self, a: float, sigma: float, prunable: set[str]) -> None:
        self.a, self.sigma, self.prunable = a, sigma, prunable

    def __call__(self, name: str, z: Tensor) -> Tensor:
        if name not in self.prunable:
            return torch.ones_like(z)
        return bandstop(z, self.a, self.sigma)


class MaskGate:
    """Fixed binary masks (magnitude-pruning fine-tuning, hard-mask evaluation)."""

    def __init__(self, masks: dict[str, Tensor]) -> None:
        self.masks = masks

    def __call__(self, name: str, z: Tensor) -> Tensor:
        m = self.masks.get(name)
        return torch.ones_like(z) if m is None else m


class LatentGCN(nn.Module):
    """The GCN whose weight matrices are W = s * Z * gate(Z), Z aligned with a prior (METHOD
    section 2). Z is initialized as samples of the prior; s = gain / sqrt(fan_in) is fixed."""

    def __init__(self, config: GCNConfig, adjacency: Tensor, prior: Prior, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.prior = prior
        gen = torch.Generator().manual_seed(seed)
        self.latent = nn.ParameterDict()
        self.scales: dict[str, float] = {}
        self.prunable: set[str] = set()
        for name, (shape, prunable, gain) in config.weight_shapes().items():
            key = name.replace(".", "__")
            self.latent[key] = nn.Parameter(prior.sample(shape, generator=gen))
            self.scales[name] = gain / math.sqrt(shape[1])
            if prunable:
                self.prunable.add(name)
        self.dense = nn.ParameterDict()
        for name, shape in config.dense_shapes().items():
            init = torch.ones(shape) if name.endswith("norm.weight") else torch.zeros(shape)
            self.dense[name.replace(".", "__")] = nn.Parameter(init)
        self.register_buffer("adjacency", normalized_adjacency(adjacency))

    def latents(self, prunable_only: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(weight name, latent Z shaped (out, in)) of the prunable matrices, or of all."""
        for key, z in self.latent.items():
            name = key.replace("__", ".")
            if not prunable_only or name in self.prunable:
                yield name, z

    def effective_params(self, gate: Gate = dense_gate) -> dict[str, Tensor]:
        """Every parameter `gcn_forward` takes: s * Z * gate(Z) per weight matrix, and the
        never-pruned biases and normalization parameters."""
        params = {name: self.scales[name] * z * gate(name, z) for name, z in self.latents(False)}
        params.update({k.replace("__", "."): v for k, v in self.dense.items()})
        return params

    def forward(self, x: Tensor, gate: Gate = dense_gate) -> Tensor:
        return gcn_forward(self.effective_params(gate), self.adjacency, x, self.config)

    def num_params(self) -> dict[str, int]:
        prunable = sum(z.numel() for _, z in self.latents())
        total = sum(p.numel() for p in self.parameters())
        return {"total": total, "prunable": prunable}

"""Rate r -> pruned network: hard masks at a prior (a(r)) or exact (empirical) threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mrmp.gcn import GCNConfig, LatentGCN, gcn_forward
from mrmp.rates import MODES, Mode


@dataclass
class Derivation:
    """What a derivation did: the thresholds used and the pruning rate observed.

    `thresholds` and `layer_rates` are per prunable weight matrix: the cut on |Z| (0 where
    nothing is cut) and the fraction of its weights pruned; `pruned` and `prunable` count
    weights of the prunable matrices; `kept_params` counts every parameter the network keeps.
    """

    rate: float
    mode: Mode
    prior_threshold: float
    thresholds: dict[str, float]
    layer_rates: dict[str, float]
    pruned: int
    prunable: int
    kept_params: int

    @property
    def observed_rate(self) -> float:
        """The fraction of the prunable weights pruned."""
        return self.pruned / self.prunable if self.prunable else 0.0

    def flops(self, config: GCNConfig) -> int:
        """One sample's forward FLOPs counting only the kept weights of each pruned matrix."""
        shapes = config.weight_shapes()
        kept = {
            name: round((1 - rate) * math.prod(shapes[name][0]))
            for name, rate in self.layer_rates.items()
        }
        return config.flops(kept)


class PrunedGCN(nn.Module):
    """A derived network: fixed effective weights, the same forward as the latent model."""

    def __init__(self, config: GCNConfig, params: dict[str, Tensor], adjacency: Tensor) -> None:
        super().__init__()
        self.config = config
        self.names = list(params)
        for i, name in enumerate(self.names):
            self.register_buffer(f"p{i}", params[name].detach().clone())
        self.register_buffer("adjacency", adjacency.detach().clone())

    def params(self) -> dict[str, Tensor]:
        """The effective parameters, by name, as `gcn_forward` takes them."""
        return {name: getattr(self, f"p{i}") for i, name in enumerate(self.names)}

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return gcn_forward(self.params(), self.adjacency, x, self.config)


class MagnitudeIndex:
    """Every prunable layer's |Z| sorted once, so that deriving any rate costs a binary search
    per layer and one masked multiply. The one implementation of the derivation rule:
    `thresholds` gives each layer's cut and `keep` the mask; `derive_masks` and `derive` use it.
    """

    def __init__(self, model: LatentGCN) -> None:
        self.model = model
        self.scaled: dict[str, Tensor] = {}  # s * Z, the weight before masking
        self.magnitude: dict[str, Tensor] = {}
        self.sorted: dict[str, Tensor] = {}
        with torch.no_grad():
            for name, z in model.latents(prunable_only=False):
                self.scaled[name] = model.scales[name] * z.detach()
                if name in model.prunable:
                    mag = z.detach().abs()
                    self.magnitude[name] = mag
                    self.sorted[name] = mag.reshape(-1).sort().values
            self.dense = {k.replace("__", "."): v.detach() for k, v in model.dense.items()}
        self.fixed = sum(
            z.numel() for name, z in self.scaled.items() if name not in self.magnitude
        ) + sum(p.numel() for p in self.dense.values())

    def thresholds(self, rate: float, mode: Mode) -> tuple[float, dict[str, float], dict[str, int]]:
        """The prior threshold a(r), and per layer the threshold t used and the number of
        weights pruned, those with |Z| <= t (a(r): METHOD section 3).

        prior: t = a(r) in every layer, the paper's rule. exact: t = the k-th smallest |Z| of
        the layer, k = round(r n), so the layer loses round(r n) weights (more when |Z| ties
        at t); t = -1 when k = 0, so nothing is pruned.
        Raises ValueError for a rate outside [0, 1) or an unknown mode.
        """
        a = self.model.prior.threshold(rate)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        used: dict[str, float] = {}
        pruned: dict[str, int] = {}
        for name, s in self.sorted.items():
            if mode == "prior":
                t = a
            else:
                k = round(rate * s.numel())
                t = float(s[k - 1]) if k > 0 else -1.0
            used[name] = t
            # The count of what `keep` cuts, read off the sorted magnitudes without a mask.
            pruned[name] = int(torch.searchsorted(s, torch.tensor(t, device=s.device), right=True))
        return a, used, pruned

    def keep(self, name: str, threshold: float) -> Tensor:
        """The mask rule, a bool tensor shaped like layer `name`'s weight: |Z| > threshold."""
        return self.magnitude[name] > threshold

    def derivation(self, rate: float, mode: Mode = "prior") -> Derivation:
        """What deriving `rate` prunes, without building the network."""
        return self._info(rate, mode, *self.thresholds(rate, mode))

    def _info(
        self, rate: float, mode: Mode, a: float, used: dict[str, float], pruned: dict[str, int]
    ) -> Derivation:
        sizes = {name: s.numel() for name, s in self.sorted.items()}
        total, cut = sum(sizes.values()), sum(pruned.values())
        return Derivation(
            rate=rate,
            mode=mode,
            prior_threshold=a,
            thresholds={name: max(t, 0.0) for name, t in used.items()},
            layer_rates={name: pruned[name] / sizes[name] for name in sizes},
            pruned=cut,
            prunable=total,
            kept_params=total - cut + self.fixed,
        )

    @torch.no_grad()
    def masks(self, rate: float, mode: Mode = "prior") -> tuple[dict[str, Tensor], Derivation]:
        """Per prunable layer the mask `keep` gives at `rate` (in the latent's dtype, for a
        `MaskGate`), and what the derivation prunes."""
        a, used, pruned = self.thresholds(rate, mode)
        masks = {
            name: self.keep(name, t).to(self.magnitude[name].dtype) for name, t in used.items()
        }
        return masks, self._info(rate, mode, a, used, pruned)

    @torch.no_grad()
    def derive(self, rate: float, mode: Mode = "prior") -> tuple[PrunedGCN, Derivation]:
        """The pruned network for `rate`, ready to run, and what the derivation pruned."""
        a, used, pruned = self.thresholds(rate, mode)
        params = dict(self.scaled)
        for name, t in used.items():
            params[name] = self.scaled[name] * self.keep(name, t)
        params.update(self.dense)
        net = PrunedGCN(self.model.config, params, self.model.adjacency)
        return net, self._info(rate, mode, a, used, pruned)


def derive_masks(
    model: LatentGCN, rate: float, mode: Mode = "prior"
) -> tuple[dict[str, Tensor], Derivation]:
    """Hard masks 1{|Z| > threshold} (float, shaped like each prunable weight) for fine-tuning
    through a `MaskGate`, and what they prune. Rule and errors: `MagnitudeIndex.thresholds`."""
    return MagnitudeIndex(model).masks(rate, mode)


def derive(model: LatentGCN, rate: float, mode: Mode = "prior") -> tuple[PrunedGCN, Derivation]:
    """The pruned network for `rate`, ready to run (no latent weights, no gradients).
    Rule and errors: `MagnitudeIndex.thresholds`; to derive many rates, keep one index."""
    return MagnitudeIndex(model).derive(rate, mode)

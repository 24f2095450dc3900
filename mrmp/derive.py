"""Rate r -> pruned network: hard masks at a prior (a(r)) or exact (empirical) threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mrmp.gcn import GCNConfig, LatentGCN, MaskGate, gcn_forward
from mrmp.rates import MODES, Mode


@dataclass
class Derivation:
    """What a derivation did: the thresholds used and the pruning rate observed."""

    rate: float
    mode: Mode
    prior_threshold: float
    thresholds: dict[str, float]
    layer_rates: dict[str, float]
    pruned: int
    prunable: int
    kept_params: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def observed_rate(self) -> float:
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
        return {name: getattr(self, f"p{i}") for i, name in enumerate(self.names)}

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return gcn_forward(self.params(), self.adjacency, x, self.config)


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1), got {rate}")


@torch.no_grad()
def derive_masks(
    model: LatentGCN, rate: float, mode: Mode = "prior"
) -> tuple[dict[str, Tensor], Derivation]:
    """Hard masks 1{|Z| > threshold} for every prunable weight, and what they observed.

    prior: one threshold a(r) from the prior's quantile for every layer (the paper's);
    exact: each layer's empirical quantile of |Z|, so each layer loses exactly round(r n).
    """
    _check_rate(rate)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    a = model.prior.threshold(rate)
    masks: dict[str, Tensor] = {}
    thresholds: dict[str, float] = {}
    layer_rates: dict[str, float] = {}
    pruned = total = 0
    for name, z in model.latents():
        mag = z.detach().abs().reshape(-1)
        n = mag.numel()
        if mode == "prior":
            t = a
        else:
            k = round(rate * n)
            t = float(torch.kthvalue(mag, k).values) if k > 0 else -1.0
        mask = (z.detach().abs() > t).to(z.dtype)
        kept = int(mask.sum())
        masks[name] = mask
        thresholds[name] = max(t, 0.0)
        layer_rates[name] = (n - kept) / n
        pruned += n - kept
        total += n
    unpruned = sum(z.numel() for name, z in model.latents(False) if name not in model.prunable)
    dense = sum(p.numel() for p in model.dense.values())
    info = Derivation(
        rate=rate,
        mode=mode,
        prior_threshold=a,
        thresholds=thresholds,
        layer_rates=layer_rates,
        pruned=pruned,
        prunable=total,
        kept_params=total - pruned + unpruned + dense,
    )
    return masks, info


@torch.no_grad()
def derive(model: LatentGCN, rate: float, mode: Mode = "prior") -> tuple[PrunedGCN, Derivation]:
    """The pruned network for `rate`, ready to run (no latent weights, no gradients)."""
    masks, info = derive_masks(model, rate, mode)
    params = model.effective_params(MaskGate(masks))
    return PrunedGCN(model.config, params, model.adjacency), info


class MagnitudeIndex:
    """Every prunable layer's |Z| sorted once, so that deriving any rate costs a binary search
    per layer and one masked multiply, instead of a quantile search over all the weights.

    `derive` gives the same network and the same Derivation as `derive()` (tested); the
    service derives uncached rates with it.
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
        """The prior threshold a(r), and per layer the threshold used and the weights pruned
        (those with |Z| <= threshold, as in `derive_masks`)."""
        _check_rate(rate)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        a = self.model.prior.threshold(rate)
        used: dict[str, float] = {}
        pruned: dict[str, int] = {}
        for name, s in self.sorted.items():
            if mode == "prior":
                t = a
            else:
                k = round(rate * s.numel())
                t = float(s[k - 1]) if k > 0 else -1.0
            used[name] = t
            pruned[name] = int(torch.searchsorted(s, torch.tensor(t), right=True))
        return a, used, pruned

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
    def derive(self, rate: float, mode: Mode = "prior") -> tuple[PrunedGCN, Derivation]:
        a, used, pruned = self.thresholds(rate, mode)
        params = dict(self.scaled)
        for name, t in used.items():
            params[name] = self.scaled[name] * (self.magnitude[name] > t)
        params.update(self.dense)
        net = PrunedGCN(self.model.config, params, self.model.adjacency)
        return net, self._info(rate, mode, a, used, pruned)

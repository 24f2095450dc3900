"""Rate r -> pruned network: hard masks at a prior (a(r)) or exact (empirical) threshold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from mrmp.gcn import GCNConfig, LatentGCN, MaskGate, gcn_forward

Mode = Literal["prior", "exact"]
MODES: tuple[str, ...] = ("prior", "exact")


@dataclass
class Derivation:
    """What a derivation did: the thresholds used and the pruning rate observed."""

    rate: float
    mode: str
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
    model: LatentGCN, rate: float, mode: str = "prior"
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
def derive(model: LatentGCN, rate: float, mode: str = "prior") -> tuple[PrunedGCN, Derivation]:
    """The pruned network for `rate`, ready to run (no latent weights, no gradients)."""
    masks, info = derive_masks(model, rate, mode)
    params = model.effective_params(MaskGate(masks))
    return PrunedGCN(model.config, params, model.adjacency), info

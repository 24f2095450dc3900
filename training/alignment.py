"""How closely a trained model's latent weights follow its prior, layer by layer: the KL
estimate training minimised and the prior-mode observed rate against the requested one (METHOD
sections 3-4: the observed rate is close to r only as far as the KL made Z follow Q)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mrmp.derive import MagnitudeIndex
from mrmp.gcn import LatentGCN
from training.evaluate import RATE_GRID
from training.kld import SoftHistogramKL

# The paper's range: every rate of the 1% grid from 0.50 to 0.98.
ALIGNMENT_RATES: tuple[float, ...] = tuple(r for r in RATE_GRID if r <= 0.98)


@dataclass(frozen=True)
class LayerAlignment:
    """One prunable weight matrix ("all": every prunable weight together, the service's
    observed rate). `kl` is training's soft-histogram estimate over all the layer's weights
    (None for "all": training averages it over layers); `worst_error` the observed minus the
    requested rate, in points, at `worst_rate`, the rate of `rates` where it is largest in
    magnitude (negative: fewer weights pruned than asked)."""

    name: str
    weights: int
    kl: float | None
    worst_error: float
    worst_rate: float


def prior_alignment(
    model: LatentGCN, rates: Sequence[float] = ALIGNMENT_RATES
) -> list[LayerAlignment]:
    """Each prunable layer's alignment, then "all". `rates`: prior-mode rates in [0, 1).
    Raises ValueError for a rate outside [0, 1) or an empty `rates`."""
    if not rates:
        raise ValueError("no rates to check")
    index = MagnitudeIndex(model)
    derivations = [index.derivation(r, "prior") for r in rates]
    kl = SoftHistogramKL(model.prior, sample=None)
    latents = dict(model.latents(prunable_only=True))

    def worst(errors: list[float]) -> tuple[float, float]:
        i = max(range(len(errors)), key=lambda k: abs(errors[k]))
        return 100.0 * errors[i], rates[i]

    rows = []
    with torch.no_grad():
        for name, magnitudes in index.sorted.items():
            error, at = worst([d.layer_rates[name] - d.rate for d in derivations])
            rows.append(
                LayerAlignment(
                    name, magnitudes.numel(), float(kl.divergence(latents[name])), error, at
                )
            )
    error, at = worst([d.observed_rate - d.rate for d in derivations])
    rows.append(LayerAlignment("all", derivations[0].prunable, None, error, at))
    return rows

"""The soft-histogram estimate of KL(P || Q) between latent weights and the prior (METHOD
section 4).

P is a Gaussian-kernel density of the weights integrated over fixed bins: the mass of bin
[e_i, e_{i+1}) is mean_z [Phi((e_{i+1} - z)/h) - Phi((e_i - z)/h)], two tail bins included.
This is differentiable in z and sums to exactly 1.

Q_b is the prior's mass of each bin after the same kernel smoothing [ours], computed on a
fine quantile grid of the prior: so weights that follow Q exactly get KL = 0 for every prior,
including the sharp-edged uniform, whose raw bin masses would be 0 in the tails where the
smoothed histogram of perfectly uniform weights is not.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mrmp.priors import Prior

# exp(-81) is a normal float32; beyond it the kernel is below float32's resolution anyway.
KERNEL_T2_MAX = 81.0


class SoftCdf(torch.autograd.Function):
    """mean_z Phi((e - z) / h) at each edge e, for z (N,), edges (E,), scale = h * sqrt(2):
    (E,) values. The backward is written out: autograd's, through erf, takes exp(-t^2) of
    every (weight, edge) pair, which underflows for edges many kernel widths from the weight,
    and an exp whose result underflows runs about ten times slower on CPUs (0.3 s against
    0.03 s for 9.3M values, measured on the project's machine): most of an MRMP step on FPHA.
    Clamping t^2 at 81 keeps every value a normal float and changes each kernel value by less
    than exp(-81), 7e-36."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, edges: Tensor, scale: float) -> Tensor:
        t = (edges[None, :] - z[:, None]) / scale
        ctx.save_for_backward(t)
        ctx.scale = scale
        return (0.5 * (1.0 + torch.erf(t))).mean(dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        # d/dz of 0.5 * erf((e - z) / scale) is -exp(-t^2) / (scale * sqrt(pi)).
        (t,) = ctx.saved_tensors
        kernel = t.square().clamp_(max=KERNEL_T2_MAX).neg_().exp_()
        grad_z = kernel @ grad
        return grad_z.mul_(-1.0 / (t.shape[0] * ctx.scale * math.sqrt(math.pi))), None, None


def quantile_grid(prior: Prior, points: int = 20_000) -> Tensor:
    """The prior's quantiles at the midpoints of `points` equal steps of probability: values
    that follow the prior exactly, to smooth as the weights are."""
    levels = (torch.arange(points, dtype=torch.float64) + 0.5) / points
    return prior.quantile(levels).float()


def subsample(z: Tensor, sample: int | None) -> Tensor:
    """z flattened, or `sample` of its values drawn uniformly (with replacement) when it has
    more: keeps an estimate's cost flat for large layers."""
    z = z.reshape(-1)
    if sample is not None and z.numel() > sample:
        z = z[torch.randint(z.numel(), (sample,), device=z.device)]
    return z


class SoftHistogramKL:
    """KL(P || Q) on `bins` equal bins over [-support, support] plus two tail bins.

    `kernel_width` is in bin widths. `sample` caps how many weights per layer enter one
    estimate (a uniform random subset), which keeps the cost flat for large layers.
    """

    def __init__(
        self,
        prior: Prior,
        bins: int = 48,
        kernel_width: float = 1.0,
        eps: float = 1e-8,
        sample: int | None = 32768,
        smooth_prior: bool = True,
    ) -> None:
        s = prior.support
        self.prior = prior
        self.edges = torch.linspace(-s, s, bins + 1)
        self.h = kernel_width * (2 * s / bins)
        self.eps = eps
        self.sample = None
        if smooth_prior:
            self.q = self.histogram(quantile_grid(prior))
        else:
            self.q = prior.bin_masses(self.edges).float()
        self.sample = sample

    def histogram(self, z: Tensor) -> Tensor:
        """Soft bin masses of the values in z (bins + 2 values)."""
        z = subsample(z, self.sample)
        soft_cdf = SoftCdf.apply(z, self.edges.to(z.device), self.h * math.sqrt(2.0))
        zero, one = soft_cdf.new_zeros(1), soft_cdf.new_ones(1)
        return torch.diff(torch.cat([zero, soft_cdf, one]))

    def divergence(self, z: Tensor) -> Tensor:
        p = self.histogram(z)
        q = self.q.to(p.device)
        return (p * torch.log((p + self.eps) / (q + self.eps))).sum()

    def __call__(self, latents: list[Tensor]) -> Tensor:
        """The mean over layers of each layer's KL (per-layer alignment)."""
        return torch.stack([self.divergence(z) for z in latents]).mean()


class SoftRateGap:
    """The mean squared gap between each layer's soft observed rate and the prior's, at the
    prior thresholds a(r) of `rates` [ours; METHOD sections 3-4].

    The observed rate at r is the fraction of |z| <= a(r) (`mrmp.derive`); softened by the KL
    estimate's Gaussian kernel (std `kernel` in latent units), it is C(a) - C(-a) with C the
    kernel-smoothed distribution function (`SoftCdf`). The target is the same quantity for the
    prior, on a fine quantile grid of it, so weights that follow the prior get a gap of 0 at
    every rate. The KL of a smooth shortfall of a point of mass is about 1e-4, too small for
    its weight to close; this term measures the shortfall itself. Rates of 0 are skipped
    (a(0) = 0). `sample` caps the weights per layer as in `SoftHistogramKL`.
    """

    def __init__(
        self, prior: Prior, rates: tuple[float, ...], kernel: float, sample: int | None = 32768
    ) -> None:
        a = torch.tensor([prior.threshold(r) for r in rates if r > 0], dtype=torch.float32)
        if a.numel() == 0:
            raise ValueError("SoftRateGap needs at least one rate above 0")
        self.edges = torch.cat([-a, a])
        self.scale = kernel * math.sqrt(2.0)
        self.sample = None
        self.target = self.soft_rates(quantile_grid(prior))
        self.sample = sample

    def soft_rates(self, z: Tensor) -> Tensor:
        """The soft observed rate of the values in z at each threshold: (rates,) in [0, 1]."""
        z = subsample(z, self.sample)
        cdf = SoftCdf.apply(z, self.edges.to(z.device), self.scale)
        k = cdf.numel() // 2
        return cdf[k:] - cdf[:k]

    def gap(self, z: Tensor) -> Tensor:
        return (self.soft_rates(z) - self.target.to(z.device)).square().mean()

    def __call__(self, latents: list[Tensor]) -> Tensor:
        """The mean over layers of each layer's gap (per-layer, as the KL)."""
        return torch.stack([self.gap(z) for z in latents]).mean()

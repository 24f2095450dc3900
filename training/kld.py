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

import torch
from torch import Tensor

from mrmp.priors import Prior


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
            grid = 20_000
            levels = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
            self.q = self.histogram(prior.quantile(levels).float())
        else:
            self.q = prior.bin_masses(self.edges).float()
        self.sample = sample

    def histogram(self, z: Tensor) -> Tensor:
        """Soft bin masses of the values in z (bins + 2 values)."""
        z = z.reshape(-1)
        if self.sample is not None and z.numel() > self.sample:
            idx = torch.randint(z.numel(), (self.sample,), device=z.device)
            z = z[idx]
        t = (self.edges.to(z.device)[None, :] - z[:, None]) / (self.h * math.sqrt(2.0))
        soft_cdf = (0.5 * (1.0 + torch.erf(t))).mean(dim=0)
        zero, one = soft_cdf.new_zeros(1), soft_cdf.new_ones(1)
        return torch.diff(torch.cat([zero, soft_cdf, one]))

    def divergence(self, z: Tensor) -> Tensor:
        p = self.histogram(z)
        q = self.q.to(p.device)
        return (p * torch.log((p + self.eps) / (q + self.eps))).sum()

    def __call__(self, latents: list[Tensor]) -> Tensor:
        """The mean over layers of each layer's KL (per-layer alignment)."""
        return torch.stack([self.divergence(z) for z in latents]).mean()

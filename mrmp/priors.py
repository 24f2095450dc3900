"""Unit-variance symmetric priors for the latent weights.

Because the latent weights are pulled towards a fixed prior Q, pruning the fraction r of
smallest magnitudes is a cut at the prior's quantile: a(r) = F^{-1}((1 + r) / 2) (METHOD
section 3).
All computations run in float64.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor


def _as_f64(x: Tensor | float) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


class Prior(ABC):
    """A symmetric, zero-mean, unit-variance distribution."""

    name: str

    @abstractmethod
    def cdf(self, x: Tensor | float) -> Tensor: ...

    @abstractmethod
    def quantile(self, p: Tensor | float) -> Tensor: ...

    @abstractmethod
    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """Draw float32 samples (used to initialize latent weights on the prior)."""

    @property
    @abstractmethod
    def support(self) -> float:
        """Half-width of the range the KL histogram bins cover (the tails get their own bins)."""

    def threshold(self, rate: float) -> float:
        """a(r): the magnitude under which a fraction `rate` of the prior's mass lies.
        Raises ValueError for a rate outside [0, 1)."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"pruning rate must be in [0, 1), got {rate}")
        if rate == 0.0:
            return 0.0
        return float(self.quantile((1.0 + rate) / 2.0))

    def rate_of_threshold(self, a: float) -> float:
        """The inverse map: fraction of the prior's mass with |z| <= a."""
        return float(2.0 * self.cdf(a) - 1.0)

    def bin_masses(self, edges: Tensor) -> Tensor:
        """Prior mass of (-inf, e0), [e0, e1), ..., [e_{n-1}, +inf): n + 1 values summing to 1."""
        c = self.cdf(_as_f64(edges))
        zero, one = c.new_zeros(1), c.new_ones(1)
        return torch.diff(torch.cat([zero, c, one]))


class UniformPrior(Prior):
    name = "uniform"
    half_width = math.sqrt(3.0)

    def cdf(self, x: Tensor | float) -> Tensor:
        b = self.half_width
        return ((_as_f64(x) + b) / (2 * b)).clamp(0.0, 1.0)

    def quantile(self, p: Tensor | float) -> Tensor:
        b = self.half_width
        return -b + 2 * b * _as_f64(p)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(shape, generator=generator)
        return (2 * u - 1) * self.half_width

    @property
    def support(self) -> float:
        return self.half_width


class GaussianPrior(Prior):
    name = "gaussian"

    def cdf(self, x: Tensor | float) -> Tensor:
        return 0.5 * (1.0 + torch.erf(_as_f64(x) / math.sqrt(2.0)))

    def quantile(self, p: Tensor | float) -> Tensor:
        return math.sqrt(2.0) * torch.erfinv(2.0 * _as_f64(p) - 1.0)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(shape, generator=generator)

    @property
    def support(self) -> float:
        return 3.5


class LaplacePrior(Prior):
    name = "laplace"
    scale = 1.0 / math.sqrt(2.0)

    def cdf(self, x: Tensor | float) -> Tensor:
        x = _as_f64(x)
        half = 0.5 * torch.exp(-x.abs() / self.scale)
        return torch.where(x < 0, half, 1.0 - half)

    def quantile(self, p: Tensor | float) -> Tensor:
        p = _as_f64(p)
        lower = self.scale * torch.log(2.0 * p)
        upper = -self.scale * torch.log(2.0 - 2.0 * p)
        return torch.where(p < 0.5, lower, upper)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(shape, generator=generator).clamp(1e-7, 1 - 1e-7)
        return self.quantile(u).float()

    @property
    def support(self) -> float:
        return 5.0


PRIORS: dict[str, Prior] = {p.name: p for p in (UniformPrior(), GaussianPrior(), LaplacePrior())}


def get_prior(name: str) -> Prior:
    """The prior named `name`; ValueError names the known ones."""
    try:
        return PRIORS[name]
    except KeyError:
        raise ValueError(f"unknown prior {name!r}; known: {', '.join(PRIORS)}") from None

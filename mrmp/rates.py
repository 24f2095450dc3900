"""The words a request uses to pick a derived network: the threshold mode and the rate key.

A rate is served at 1e-3 resolution: rates closer than that share one derived network, so the
key of a network is the rate in thousandths with its mode (shared/DESIGN.md, the rate cache).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

# prior: the threshold is the prior's quantile a(r) (the paper's Eq. 4); exact: the empirical
# quantile of the latent magnitudes, so the observed rate equals the requested one.
Mode = Literal["prior", "exact"]
MODES: tuple[Mode, ...] = get_args(Mode)

RESOLUTION = 1000  # rates per unit: 1e-3


def rate_key(rate: float) -> str:
    """The key of `rate` in evaluation tables (manifest.json, results JSON): "0.50"."""
    return f"{rate:.2f}"


class RateKey(NamedTuple):
    """A derived network's identity: the rate in thousandths (0..999) and the mode."""

    milli: int
    mode: Mode

    @classmethod
    def of(cls, rate: float, mode: Mode) -> RateKey:
        """The key of `rate` (a fraction in [0, 1)); rates closer than 1e-3 share a key."""
        return cls(round(rate * RESOLUTION), mode)

    @property
    def rate(self) -> float:
        """The served rate, a fraction in [0, 1)."""
        return self.milli / RESOLUTION

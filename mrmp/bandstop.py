"""The band-stop psi_{a,sigma} that makes magnitude pruning differentiable (METHOD section 2),
and the annealing of its crispness sigma. Its hard limit, the inference mask, is
`mrmp.derive.MagnitudeIndex.keep`."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def bandstop(z: Tensor, a: float, sigma: float) -> Tensor:
    """psi_{a,sigma}(z) = sigmoid(sigma (z - a)) + sigmoid(-sigma (z + a)).

    About 0 for |z| < a and about 1 above; exactly 1 everywhere when a == 0 (no pruning).
    """
    if a <= 0.0:
        return torch.ones_like(z)
    return torch.sigmoid(sigma * (z - a)) + torch.sigmoid(-sigma * (z + a))


def annealed_crispness(a: float, progress: float, start: float = 1.0, end: float = 100.0) -> float:
    """sigma at training progress in [0, 1]: geometric from start/a to end/a.

    Expressed relative to a so that every rate's band-stop has the same shape in units of a.
    """
    progress = min(max(progress, 0.0), 1.0)
    k = start * math.exp(progress * math.log(end / start))
    return k / max(a, 1e-12)

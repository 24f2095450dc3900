"""Accuracy per rate and observed against requested rate (the paper's Figure 4 data, METHOD
section 8)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from mrmp.derive import MagnitudeIndex
from mrmp.gcn import LatentGCN
from mrmp.rates import Mode, rate_key

# The paper's figure: every rate of the 1% grid from 0.50 to 0.99.
RATE_GRID: tuple[float, ...] = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))


@torch.no_grad()
def predict(net: Callable[[Tensor], Tensor], x: Tensor, batch: int = 1024) -> Tensor:
    """Top-1 class indices (N,) of descriptors x (N, J, F), `batch` samples at a time."""
    return torch.cat([net(x[i : i + batch]).argmax(dim=1) for i in range(0, len(x), batch)])


def _percent_correct(pred: Tensor, y: Tensor) -> float:
    return float((pred == y).float().mean()) * 100.0 if len(y) else 0.0


def accuracy(net: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy in percent (0 for no samples)."""
    return _percent_correct(predict(net, x), y)


def evaluate_rate(
    model: LatentGCN | MagnitudeIndex, x: Tensor, y: Tensor, rate: float, mode: Mode = "prior"
) -> tuple[dict[str, float], Tensor]:
    """One derivation at `rate` (from the model, or from its index when several rates are
    evaluated): its accuracy (percent) and observed rate (fraction), and the predictions (N,)."""
    index = model if isinstance(model, MagnitudeIndex) else MagnitudeIndex(model)
    net, info = index.derive(rate, mode)
    pred = predict(net, x)
    return {"accuracy": _percent_correct(pred, y), "observed_rate": info.observed_rate}, pred


def evaluate_rates(
    model: LatentGCN, x: Tensor, y: Tensor, rates: Iterable[float], mode: Mode = "prior"
) -> dict[str, dict[str, float]]:
    """{"0.50": {"accuracy": %, "observed_rate": fraction}, ...} for each rate; the weights
    are sorted once for all the rates."""
    index = MagnitudeIndex(model)
    return {rate_key(r): evaluate_rate(index, x, y, r, mode)[0] for r in rates}


def confusion_matrix(y: Tensor, pred: Tensor, num_classes: int) -> Tensor:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    flat = y.long() * num_classes + pred.long()
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)

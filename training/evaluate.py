"""Accuracy per rate and observed against requested rate (the paper's Figure 4 data)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from mrmp.derive import derive
from mrmp.gcn import LatentGCN

# The paper's figure: every rate of the 1% grid from 0.50 to 0.99.
RATE_GRID: tuple[float, ...] = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))


def rate_key(rate: float) -> str:
    return f"{rate:.2f}"


@torch.no_grad()
def predict(net: Callable[[Tensor], Tensor], x: Tensor, batch: int = 1024) -> Tensor:
    return torch.cat([net(x[i : i + batch]).argmax(dim=1) for i in range(0, len(x), batch)])


def accuracy(net: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy in percent."""
    return float((predict(net, x) == y).float().mean()) * 100.0


def evaluate_rate(
    model: LatentGCN, x: Tensor, y: Tensor, rate: float, mode: str = "prior"
) -> tuple[dict[str, float], Tensor]:
    """One derivation at `rate`: its accuracy and observed rate, and the predictions."""
    net, info = derive(model, rate, mode)
    pred = predict(net, x)
    acc = float((pred == y).float().mean()) * 100.0 if len(y) else 0.0
    return {"accuracy": acc, "observed_rate": info.observed_rate}, pred


def evaluate_rates(
    model: LatentGCN, x: Tensor, y: Tensor, rates: Iterable[float], mode: str = "prior"
) -> dict[str, dict[str, float]]:
    """{"0.50": {"accuracy": %, "observed_rate": fraction}, ...} for each rate."""
    return {rate_key(r): evaluate_rate(model, x, y, r, mode)[0] for r in rates}

"""Accuracy per rate, observed against requested rate, and the paper's Figure 4 as plots."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

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


def plot_accuracy(results: dict, path: Path) -> None:
    """Accuracy against rate: MRMP per prior (seen rates marked), SRMP and MP at seen rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {rate_key(r) for r in results["seen_rates"]}
    fig, ax = plt.subplots(figsize=(8, 5))
    for prior, table in results["mrmp"].items():
        keys = sorted(table)
        xs = [float(k) for k in keys]
        (line,) = ax.plot(xs, [table[k] for k in keys], label=f"MRMP ({prior})", lw=1.5)
        sk = [k for k in keys if k in seen]
        ax.scatter([float(k) for k in sk], [table[k] for k in sk], color=line.get_color(), s=18)
    for method, style in (("srmp", "s--"), ("mp", "v:")):
        table = results.get(method) or {}
        if table:
            keys = sorted(table)
            label = "SRMP (one model per rate)" if method == "srmp" else "MP (no retraining)"
            ax.plot([float(k) for k in keys], [table[k] for k in keys], style, label=label)
    ax.axhline(results["dense"], color="gray", lw=0.8, label=f"dense {results['dense']:.1f}%")
    ax.set_xlabel("pruning rate (dots: seen in training; lines between: unseen)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{results['dataset']}: accuracy against pruning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_observed_rate(results: dict, path: Path) -> None:
    """Observed pruning rate (prior-mode threshold a(r)) against the requested rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for prior, table in results["observed_rate"].items():
        keys = sorted(table)
        ax.plot([float(k) for k in keys], [table[k] for k in keys], label=prior)
    ax.plot([0.5, 0.99], [0.5, 0.99], "k:", lw=0.8, label="requested")
    ax.set_xlabel("requested rate")
    ax.set_ylabel("observed rate (threshold a(r) from the prior)")
    ax.set_title(f"{results['dataset']}: observed against requested rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

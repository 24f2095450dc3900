"""The paper's Figure 4 as plots (accuracy against rate, observed against requested rate), and
one model's report: its accuracy per rate, confusion matrices and training loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from mrmp.rates import rate_key


def _band(ax: Any, table: dict[str, float], sd: dict[str, float | None], color: str) -> None:
    """Shade mean ± sd over `table`'s rates where each has a standard deviation."""
    keys = sorted(k for k in table if sd.get(k) is not None)
    if keys:
        xs = [float(k) for k in keys]
        low = [table[k] - cast(float, sd[k]) for k in keys]
        high = [table[k] + cast(float, sd[k]) for k in keys]
        ax.fill_between(xs, low, high, color=color, alpha=0.2, lw=0)


def plot_accuracy(results: dict, path: Path) -> None:
    """Accuracy against rate: MRMP per prior (seen rates marked), SRMP and MP at seen rates;
    with results over several seeds (their "spread"), a band of mean ± standard deviation over
    seeds about each MRMP prior, SRMP and the dense line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {rate_key(r) for r in results["seen_rates"]}
    spread = results.get("spread", {})
    fig, ax = plt.subplots(figsize=(8, 5))
    for prior, table in results["mrmp"].items():
        keys = sorted(table)
        xs = [float(k) for k in keys]
        (line,) = ax.plot(xs, [table[k] for k in keys], label=f"MRMP ({prior})", lw=1.5)
        sk = [k for k in keys if k in seen]
        ax.scatter([float(k) for k in sk], [table[k] for k in sk], color=line.get_color(), s=18)
        _band(ax, table, spread.get("mrmp", {}).get(prior, {}), line.get_color())
    for method, style in (("srmp", "s--"), ("mp", "v:")):
        table = results.get(method) or {}
        if table:
            keys = sorted(table)
            label = "SRMP (one model per rate)" if method == "srmp" else "MP (no retraining)"
            xs, ys = [float(k) for k in keys], [table[k] for k in keys]
            (line,) = ax.plot(xs, ys, style, label=label)
            if method == "srmp":
                _band(ax, table, spread.get("srmp", {}), line.get_color())
    ax.axhline(results["dense"], color="gray", lw=0.8, label=f"dense {results['dense']:.1f}%")
    if spread.get("dense") is not None:
        low, high = results["dense"] - spread["dense"], results["dense"] + spread["dense"]
        ax.axhspan(low, high, color="gray", alpha=0.15, lw=0)
    ax.set_xlabel("pruning rate (dots: seen in training; lines between: unseen)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{results['dataset']}: accuracy against pruning rate")
    ax.grid(alpha=0.3)
    seeds = ", ".join(map(str, results.get("seeds", [])))
    ax.legend(fontsize=8, title=f"bands: ± sd over seeds {seeds}" if spread else None)
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


def plot_model_accuracy(
    rates: dict[str, dict[str, dict[str, float]]], rate_range: tuple[float, float], path: Path
) -> None:
    """One model's held-out accuracy against rate, per mode (the manifest's evaluation
    table: mode -> rate key -> accuracy, observed rate), at the evaluated rates the model
    serves (`rate_range`), each marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low, high = rate_range
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, table in rates.items():
        keys = sorted((k for k in table if low <= float(k) <= high), key=float)
        xs, ys = [float(k) for k in keys], [table[k]["accuracy"] for k in keys]
        ax.plot(xs, ys, marker="o", markersize=3, label=mode)
    ax.set_xlabel("pruning rate")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("accuracy against pruning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="threshold")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrices: dict[str, list[list[int]]], classes: list[str], path: Path) -> None:
    """Confusion matrices side by side, one per rate key: rows true class, columns predicted,
    counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    size = max(3.0, 0.45 * n + 1.5)
    fig, axes = plt.subplots(1, len(matrices), figsize=(size * len(matrices), size), squeeze=False)
    for ax, (key, counts) in zip(axes[0], matrices.items(), strict=True):
        ax.imshow(counts, cmap="Blues")
        ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        total = sum(map(sum, counts))
        right = sum(counts[i][i] for i in range(n))
        ax.set_title(f"rate {key}: {100.0 * right / max(total, 1):.1f}% of {total}")
        dark = max(max(map(max, counts)), 1) / 2  # white text on the darker cells
        for i in range(n):
            for j in range(n):
                if counts[i][j]:
                    color = "white" if counts[i][j] > dark else "black"
                    text = str(counts[i][j])
                    ax.text(j, i, text, ha="center", va="center", color=color, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(history: list[dict], path: Path) -> None:
    """Training loss per epoch: the cross-entropy and, when trained with it, the KL term."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["ce"] for h in history], label="cross-entropy")
    if any(h["kl"] for h in history):
        ax.plot(epochs, [h["kl"] for h in history], label="KL to the prior")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("loss (mean over the epoch's steps)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""The paper's Figure 4 as plots: accuracy against rate, and observed against requested rate."""

from __future__ import annotations

from pathlib import Path

from mrmp.rates import rate_key


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

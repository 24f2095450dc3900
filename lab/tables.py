"""The markdown tables the README quotes verbatim (a test checks it), written beside the
results JSON they are made from."""

from __future__ import annotations

from typing import Any

from mrmp.rates import rate_key

# Rates of the README table: the seen rates, and unseen ones between and beyond them.
TABLE_RATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99)


def results_table(results: dict) -> str:
    """Markdown: accuracy (%) per method and rate; seen rates in bold, then the observed-rate
    errors. Written beside <dataset>.json so the README quotes a generated table. With results
    over two or more seeds (a "spread"), each cell reads "mean ± sample standard deviation"
    over seeds and a line names the seeds."""
    seen = {rate_key(r) for r in results["seen_rates"]}
    priors = list(results["mrmp"])
    spread = results.get("spread", {})
    columns = [
        ("MP", "mp"),
        ("MP+FT", "mp_ft"),
        (f"SRMP ({results.get('srmp_prior', '-')})", "srmp"),
    ]
    tables = [(name, results.get(key, {}), spread.get(key, {})) for name, key in columns]
    tables += [(f"MRMP {p}", results["mrmp"][p], spread.get("mrmp", {}).get(p, {})) for p in priors]

    def cell(v: float | None, sd: float | None = None) -> str:
        if v is None:
            return "-"
        return f"{v:.1f}" if sd is None else f"{v:.1f} ± {sd:.1f}"

    lines = [
        f"Dense: {cell(results.get('dense'), spread.get('dense'))}% ({results['protocol']}).",
        "",
    ]
    if spread:
        seeds = ", ".join(map(str, results["seeds"]))
        lines += [
            f"Mean ± sample standard deviation over seeds {seeds} (each seed's value the mean "
            "over folds).",
            "",
        ]
    lines += [
        "| rate | " + " | ".join(name for name, _, _ in tables) + " |",
        "|---" * (len(tables) + 1) + "|",
    ]
    for r in TABLE_RATES:
        key = rate_key(r)
        label = f"**{key}**" if key in seen else f"{key} (unseen)"
        cells = (cell(t.get(key), sd.get(key)) for _, t, sd in tables)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    over = "seeds, folds" if spread else "folds"
    averaged = "seeds and folds" if spread else "folds"
    lines += ["", f"Worst observed-rate error over {over} and rates 0.50-0.98 (points):", ""]
    of_mean = results.get("rate_error_of_mean", {})
    for p, err in results.get("rate_error_max", {}).items():
        mean = f" ({100 * of_mean[p]:.2f} on the mean over {averaged})" if p in of_mean else ""
        lines.append(
            f"- {p}: prior mode {100 * err['prior']:.2f}{mean}, exact mode {100 * err['exact']:.3f}"
        )
    return "\n".join(lines) + "\n"


def ablation_table(results: dict[str, Any]) -> str:
    lines = ["| variant | mean | per seed |", "|---|---|---|"]
    for name, v in results["variants"].items():
        seeds = ", ".join(f"{a:.1f}" for a in v["per_seed"])
        lines.append(f"| {name} | {v['mean']:.1f} | {seeds} |")
    return "\n".join(lines) + "\n"

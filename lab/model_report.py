"""The report `mrmp train` writes beside a model it evaluated on held-out data, in
`<model>/report/`: `accuracy.png` (held-out accuracy against rate, both threshold modes),
`confusion.png` (the held-out confusion matrix at each of `report_rates`), `training.png` (the
loss per epoch) and `report.json` (the same numbers: confusion counts, per-class accuracy,
the training history). The model store ignores the folder."""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from lab.plots import plot_confusion, plot_history, plot_model_accuracy
from mrmp.derive import MagnitudeIndex
from mrmp.gcn import LatentGCN
from mrmp.rates import Mode, rate_key
from training.evaluate import confusion_matrix, evaluate_rate

REPORT_DIR = "report"
# The service's default tiers (accurate, balanced, fast): the networks a user will serve.
TIER_RATES: tuple[float, ...] = (0.5, 0.9, 0.98)


def report_rates(rate_range: tuple[float, float]) -> tuple[float, ...]:
    """The default tiers' rates a model of `rate_range` serves; (low,) when none fits (a dense
    model serves only rate 0)."""
    low, high = rate_range
    inside = tuple(r for r in TIER_RATES if low <= r <= high)
    return inside or (low,)


def write_model_report(
    folder: Path,
    model: LatentGCN,
    x: Tensor,
    y: Tensor,
    class_names: list[str],
    evaluation: dict[str, dict[str, dict[str, float]]],
    history: list[dict],
    rates: tuple[float, ...],
    rate_range: tuple[float, float],
    mode: Mode = "prior",
) -> Path:
    """Write `<folder>/report/` for held-out descriptors x (N, J, F) with labels y (N,), the
    evaluation table (mode -> rate key -> accuracy %, observed rate) within the model's
    `rate_range` and `train`'s history; confusion matrices at `rates` in `mode`. Returns the
    report folder."""
    out = Path(folder) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    confusion: dict[str, list[list[int]]] = {}
    per_class: dict[str, dict[str, float | None]] = {}
    index = MagnitudeIndex(model)
    for rate in rates:
        _, pred = evaluate_rate(index, x, y, rate, mode)
        counts = confusion_matrix(y, pred, len(class_names))
        key = rate_key(rate)
        confusion[key] = counts.tolist()
        totals = counts.sum(dim=1)
        per_class[key] = {
            name: round(100.0 * float(counts[i, i]) / float(totals[i]), 2) if totals[i] else None
            for i, name in enumerate(class_names)
        }
    report = {
        "samples": len(y),
        "mode": mode,
        "class_names": class_names,
        "confusion": confusion,
        "per_class_accuracy": per_class,
        "history": history,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_model_accuracy(evaluation, rate_range, out / "accuracy.png")
    plot_confusion(confusion, class_names, out / "confusion.png")
    plot_history(history, out / "training.png")
    return out

"""Accuracy under missing detections (`mrmp robustness`).

A fold's held-out sequences lose detections the way sensors lose them (frames, a person, the
hands, scattered joints): the coordinates are zeroed, then the sequence takes the serving path,
`fill_missing` and the descriptor. Two models trained on the other folds with the experiment's
MRMP settings (epochs overridden, for time) classify them: the protocol's, and the same with
missing-detection views in training. Each (model, fold) is a unit file in the work folder, so an
interrupted run resumes; the results are `robustness_<dataset>.json` and `.md`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lab.config import Experiment
from lab.experiment import ModelSpec, build_model, fit
from lab.reproduce import SEED, Reproduction, write_json
from mrmp.derive import MagnitudeIndex
from mrmp.rates import rate_key
from mrmp.skeleton import Layout
from training.augment import (
    describe_observed,
    every_kth,
    lost_detections,
    person_joints,
    random_frames,
    without,
)
from training.evaluate import evaluate_rate

# Every corruption's random draws come from this seed (and the corruption's place in the
# list), so both models see the same corrupted sequences.
EVAL_SEED = 0
MODE = "prior"


@dataclass(frozen=True)
class Corruption:
    """A named way of losing detections: (T, J, 3) sequence, generator -> zeroed copy."""

    name: str
    apply: Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _named_joints(layout: Layout, suffix: str) -> list[int]:
    return [j for j, name in enumerate(layout.joint_names) if name.endswith(suffix)]


def corruptions(layout: Layout) -> list[Corruption]:
    """The measured corruptions the layout allows: the persons' only with two persons, the
    hands' with joints named *HAND (SBU), the fingertips' with joints named *TIP (FPHA)."""
    out = [
        Corruption("clean", lambda s, rng: s),
        Corruption(
            "every 3rd frame dropped (1/3)", lambda s, rng: without(s, every_kth(len(s), 3))
        ),
        Corruption(
            "every 2nd frame dropped (1/2)", lambda s, rng: without(s, every_kth(len(s), 2))
        ),
        Corruption(
            "random 1/3 of frames dropped",
            lambda s, rng: without(s, random_frames(len(s), 1 / 3, rng)),
        ),
        Corruption(
            "random 1/2 of frames dropped",
            lambda s, rng: without(s, random_frames(len(s), 1 / 2, rng)),
        ),
        Corruption(
            "one frame left (the middle one)",
            lambda s, rng: without(s, [t for t in range(len(s)) if t != len(s) // 2]),
        ),
    ]
    if layout.persons == 2:
        b, a = person_joints(layout, 1), person_joints(layout, 0)
        out.append(Corruption("person B absent", lambda s, rng: without(s, joints=b)))
        out.append(Corruption("person A absent", lambda s, rng: without(s, joints=a)))
    for label, suffix in (
        ("hand joints absent (every person's)", "HAND"),
        ("fingertips absent", "TIP"),
    ):
        joints = _named_joints(layout, suffix)
        if joints:
            out.append(Corruption(label, lambda s, rng, j=joints: without(s, joints=j)))
    out.append(
        Corruption("random 20% of detections lost", lambda s, rng: lost_detections(s, 0.2, rng))
    )
    return out


def corrupted_descriptors(
    sequences: list[np.ndarray], layout: Layout, descriptor: Any
) -> dict[str, Tensor]:
    """(N, J, F) descriptors of `sequences` under each corruption, by the serving path."""
    out = {}
    for i, corruption in enumerate(corruptions(layout)):
        rng = np.random.default_rng([EVAL_SEED, i])
        described = [
            describe_observed(corruption.apply(s, rng), layout, descriptor) for s in sequences
        ]
        out[corruption.name] = torch.from_numpy(np.stack(described))
    return out


class Robustness:
    """The robustness units of `experiment` in `work`: models `{name: missing_views}` trained
    for `epochs` with `prior`, evaluated at `rates` (prior mode)."""

    def __init__(
        self,
        experiment: Experiment,
        work: Path,
        *,
        models: dict[str, int],
        epochs: int,
        prior: str,
        rates: tuple[float, ...],
        data_dir: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        if prior not in experiment.mrmp.priors:
            raise ValueError(f"prior {prior!r} is not among {experiment.mrmp.priors}")
        self.exp = experiment
        self.work = work
        self.models = models
        self.epochs = epochs
        self.prior = prior
        self.rates = rates
        self.log = log
        # The reproduction's MRMP settings and data: the models differ from its units only
        # in epochs and missing-detection views.
        self.repro = Reproduction(experiment, work, data_dir=data_dir, log=log)

    def settings(self, missing_views: int) -> dict[str, Any]:
        """What shapes a unit: the MRMP settings (epochs overridden), the views, the prior and
        the protocol, as JSON holds them."""
        mrmp = {**self.exp.unit_settings("mrmp"), "mrmp_epochs": self.epochs}
        mrmp.pop("mrmp_missing_views", None)  # each model sets its own
        return json.loads(
            json.dumps(
                {
                    "mrmp": mrmp,
                    "missing_views": missing_views,
                    "prior": self.prior,
                    "rates": [rate_key(r) for r in self.rates],
                    "mode": MODE,
                    "eval_seed": EVAL_SEED,
                    "protocol": self.exp.protocol.record(),
                }
            )
        )

    def unit(self, name: str, fold: int) -> dict[str, Any]:
        """Model `name`'s accuracy per corruption and rate on `fold` (trained if not done;
        ValueError for a unit file of other settings)."""
        path = self.work / name.replace(" ", "-") / f"fold{fold}.json"
        settings = self.settings(self.models[name])
        if path.exists():
            unit = json.loads(path.read_text())
            if unit.get("settings") != settings:
                raise ValueError(
                    f"{path} was made with other settings than this run's: delete it to redo it"
                )
            return unit
        self.log(f"[robustness {self.exp.dataset}] {name} fold {fold}")
        data = self.repro.data
        cfg = replace(
            self.repro.mrmp_config(self.prior),
            epochs=self.epochs,
            missing_views=self.models[name],
        )
        model = build_model(data, ModelSpec(prior=self.prior, seed=SEED))
        ckpt = path.with_suffix(".ckpt")
        fit(data, model, fold, cfg, checkpoint=ckpt, desc=f"{name} f{fold}")
        _, test = data.indices(fold)
        sequences = [data.dataset.sequences[i] for i in test]
        y = data.y[torch.from_numpy(test)]
        index = MagnitudeIndex(model)
        table = {
            corruption: {
                rate_key(r): evaluate_rate(index, x, y, r, MODE)[0]["accuracy"] for r in self.rates
            }
            for corruption, x in corrupted_descriptors(
                sequences, data.dataset.layout, data.descriptor
            ).items()
        }
        unit = {"settings": settings, "samples": len(test), "accuracy": table}
        write_json(path, unit)
        ckpt.unlink(missing_ok=True)
        return unit

    def run(self, folds: tuple[int, ...], out: Path, command: str) -> dict[str, Any]:
        """Every unit of `folds`, then the fold means -> robustness_<dataset>.json and .md."""
        units = {name: [self.unit(name, f) for f in folds] for name in self.models}
        names = [c.name for c in corruptions(self.repro.data.dataset.layout)]
        accuracy = {
            model: {
                c: {
                    rate_key(r): round(
                        statistics.mean(u["accuracy"][c][rate_key(r)] for u in runs), 2
                    )
                    for r in self.rates
                }
                for c in names
            }
            for model, runs in units.items()
        }
        results = {
            "dataset": self.exp.dataset,
            "command": command,
            "folds": list(folds),
            "samples": sum(u["samples"] for u in next(iter(units.values()))),
            "epochs": self.epochs,
            "prior": self.prior,
            "mode": MODE,
            "rates": [rate_key(r) for r in self.rates],
            "eval_seed": EVAL_SEED,
            "models": {name: {"missing_views": v} for name, v in self.models.items()},
            "protocol_settings": self.exp.protocol.record(),
            "accuracy": accuracy,
        }
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / f"robustness_{self.exp.dataset}.json", results)
        (out / f"robustness_{self.exp.dataset}.md").write_text(robustness_table(results))
        return results


def robustness_table(results: dict[str, Any]) -> str:
    """Markdown: accuracy (%) per corruption, a column per model and rate."""
    rates, models = results["rates"], list(results["models"])
    head = [
        f"{m} (views {results['models'][m]['missing_views']}) @ {r}" for m in models for r in rates
    ]
    lines = [
        f"Accuracy (%) on {results['dataset']} fold(s) {', '.join(map(str, results['folds']))} "
        f"({results['samples']} held-out sequences), MRMP {results['prior']}, "
        f"{results['epochs']} epochs, {results['mode']} mode.",
        "",
        "| corruption | " + " | ".join(head) + " |",
        "|---|" + "---:|" * len(head),
    ]
    for corruption in results["accuracy"][models[0]]:
        cells = [f"{results['accuracy'][m][corruption][r]:.1f}" for m in models for r in rates]
        lines.append(f"| {corruption} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

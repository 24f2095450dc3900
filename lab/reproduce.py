"""The paper's results on one dataset, by one resumable command.

Work is split into units (one per method, prior, fold and, for SRMP, rate). Each unit writes
its result as JSON under the work folder, and its training checkpoint beside it, so an
interrupted run resumes where it stopped. `aggregate` turns whatever units are done into the
results JSON and the two plots (the paper's Figure 4).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.experiment import (
    Data,
    ModelSpec,
    build_model,
    fit,
    load_data,
    protocol,
    train_config,
)
from lab.plots import plot_accuracy, plot_observed_rate
from mrmp.derive import derive_masks
from mrmp.gcn import MaskGate
from mrmp.priors import PRIORS
from training.evaluate import (
    RATE_GRID,
    accuracy,
    evaluate_rates,
    rate_key,
)
from training.train import PAPER_RATES, TrainConfig

# Dense (with MP and MP-FT), MRMP per prior, then SRMP per seen rate with the best prior.
STAGES: tuple[str, ...] = ("dense", "mrmp", "srmp")
# The ReproConfig fields that shape each kind of unit. A unit records them when it is made; one
# made under other values is refused when reused or aggregated, never silently mixed in.
UNIT_SETTINGS: dict[str, tuple[str, ...]] = {
    "dense": (
        "epochs",
        "dense_lr",
        "dense_lr_schedule",
        "dense_temporal_crops",
        "dense_batch_size",
        "mp_finetune_epochs",
    ),
    "mrmp": ("mrmp_epochs", "rates_per_step", "rate_jitter", "top_rate_every_step", "kl_weight"),
    "srmp": ("srmp_epochs", "kl_weight"),
}


def _flag(field: str, value: Any) -> str:
    """The command-line option that sets a ReproConfig field to `value`."""
    name = field.replace("_", "-")
    if value is None:
        return f"no --{name} (the protocol's)"
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    return f"--{name} {value}"


@dataclass
class ReproConfig:
    dataset: str
    work: Path
    epochs: int = 300  # the dense network (and MP's starting point)
    # The dense network's own recipe (MP starts from it; MP's fine-tuning keeps the defaults).
    dense_lr: float = 1e-3
    dense_lr_schedule: str = "constant"
    dense_temporal_crops: int = 1
    dense_batch_size: int | None = None  # None: the protocol's (the other methods' too)
    # One MRMP network trains every rate, a few per step; SRMP trains one network per rate.
    mrmp_epochs: int = 300
    srmp_epochs: int = 300
    mp_finetune_epochs: int = 50
    rates_per_step: int | None = 4
    kl_weight: float = 1.0
    rate_jitter: bool = True
    top_rate_every_step: bool = True
    priors: tuple[str, ...] = tuple(PRIORS)
    # MRMP priors to train in this run (None: all of `priors`); to split a run across processes.
    # The SRMP prior is still chosen among all of `priors`.
    mrmp_priors: tuple[str, ...] | None = None
    folds: tuple[int, ...] | None = None
    srmp_prior: str = "auto"
    # SRMP rates to train in this run (None: all seen rates); to split a run across processes.
    srmp_rates: tuple[float, ...] | None = None
    seed: int = 0
    command: str = ""
    data_dir: str | None = None


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (a temporary file, then a rename): an interrupt never leaves half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


class Reproduction:
    def __init__(self, cfg: ReproConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        self.proto = protocol(cfg.dataset)
        self.folds = cfg.folds if cfg.folds is not None else self.proto["test_folds"]
        self._data: Data | None = None

    @property
    def data(self) -> Data:
        if self._data is None:
            self._data = load_data(self.cfg.dataset, data_dir=self.cfg.data_dir)
        return self._data

    @property
    def dense_batch_size(self) -> int:
        return self.cfg.dense_batch_size or self.proto["batch_size"]

    def settings(self, kind: str) -> dict[str, Any]:
        """This run's values of the settings that shape a unit of `kind`."""
        return {field: getattr(self.cfg, field) for field in UNIT_SETTINGS[kind]}

    def protocol_settings(self) -> dict[str, Any]:
        """The dataset's protocol choices that shape every unit (`PROTOCOLS` in
        mrmp/experiment.py: filters, batch size, descriptor, augmentation), as JSON has them."""
        record = {
            "filters": self.proto["filters"],
            "batch_size": self.proto["batch_size"],
            "descriptor": self.proto["descriptor"].to_dict(),
            "augment": self.proto["augment"].to_dict(),
        }
        return json.loads(json.dumps(record))

    def check_unit(self, name: str, unit: dict) -> None:
        """Refuse a unit made under other settings or another protocol than this run's
        (ValueError)."""
        path = self.cfg.work / f"{name}.json"
        made = unit.get("settings")
        if made is None:
            raise ValueError(f"{path} records no settings: delete it to retrain it")
        made_protocol = unit.get("protocol") or {}
        changed = [k for k, v in self.protocol_settings().items() if made_protocol.get(k) != v]
        if changed:
            raise ValueError(
                f"{path} was made under another {self.cfg.dataset} protocol (its "
                f"{', '.join(changed)} differ from mrmp/experiment.py's): delete it to retrain it"
            )
        for field, want in self.settings(name.split("/")[0]).items():
            if made.get(field) != want:
                raise ValueError(
                    f"{path} was made with {_flag(field, made.get(field))}, not "
                    f"{_flag(field, want)}: run with that, or delete it to retrain it"
                )

    def _unit(self, name: str, run: Callable[[Path], dict]) -> dict:
        path = self.cfg.work / f"{name}.json"
        if path.exists():
            unit = json.loads(path.read_text())
            self.check_unit(name, unit)
            return unit
        self.log(f"[{self.cfg.dataset}] {name}")
        settings = self.settings(name.split("/")[0])
        result = {
            **run(self.cfg.work / f"{name}.ckpt"),
            "settings": settings,
            "protocol": self.protocol_settings(),
        }
        write_json(path, result)
        (self.cfg.work / f"{name}.ckpt").unlink(missing_ok=True)
        return result

    def _dense(self, fold: int) -> dict:
        def run(ckpt: Path) -> dict:
            _, _, xte, yte = self.data.split(fold)
            spec = ModelSpec(prior="gaussian", seed=self.cfg.seed)
            model = build_model(self.data, spec)
            tc = train_config(
                self.data,
                method="dense",
                epochs=self.cfg.epochs,
                lr=self.cfg.dense_lr,
                lr_schedule=self.cfg.dense_lr_schedule,
                temporal_crops=self.cfg.dense_temporal_crops,
                batch_size=self.dense_batch_size,
                seed=spec.seed,
            )
            fit(self.data, model, fold, tc, checkpoint=ckpt, desc=f"dense f{fold}")
            out: dict[str, Any] = {"dense": accuracy(model, xte, yte), "mp": {}, "mp_ft": {}}
            state = {k: v.clone() for k, v in model.state_dict().items()}
            for r in PAPER_RATES:
                # Magnitude pruning per layer of the trained dense net, no retraining.
                masks, _ = derive_masks(model, r, mode="exact")
                out["mp"][rate_key(r)] = accuracy(
                    lambda x, m=masks: model(x, MaskGate(m)), xte, yte
                )
                if self.cfg.mp_finetune_epochs > 0:
                    ft = train_config(self.data, method="dense", epochs=self.cfg.mp_finetune_epochs)
                    fit(self.data, model, fold, ft, masks=masks, desc=f"mp-ft {r} f{fold}")
                    acc = accuracy(lambda x, m=masks: model(x, MaskGate(m)), xte, yte)
                    out["mp_ft"][rate_key(r)] = acc
                    model.load_state_dict(state)
            return out

        return self._unit(f"dense/fold{fold}", run)

    def mrmp_config(self, prior: str) -> TrainConfig:
        """The MRMP training settings of this reproduction (also those of the release)."""
        return train_config(
            self.data,
            method="mrmp",
            prior=prior,
            epochs=self.cfg.mrmp_epochs,
            rates_per_step=self.cfg.rates_per_step,
            rate_jitter=self.cfg.rate_jitter,
            always_top_rate=self.cfg.top_rate_every_step,
            kl_weight=self.cfg.kl_weight,
            seed=self.cfg.seed,
        )

    def _mrmp(self, prior: str, fold: int) -> dict:
        def run(ckpt: Path) -> dict:
            _, _, xte, yte = self.data.split(fold)
            model = build_model(self.data, ModelSpec(prior=prior, seed=self.cfg.seed))
            tc = self.mrmp_config(prior)
            fit(self.data, model, fold, tc, checkpoint=ckpt, desc=f"mrmp {prior} f{fold}")
            rates = sorted({*tc.rates, *RATE_GRID})
            return {
                "seen_rates": list(tc.rates),
                "prior": evaluate_rates(model, xte, yte, rates, "prior"),
                "exact": evaluate_rates(model, xte, yte, rates, "exact"),
            }

        return self._unit(f"mrmp/{prior}/fold{fold}", run)

    def _srmp(self, prior: str, rate: float, fold: int) -> dict:
        def run(ckpt: Path) -> dict:
            _, _, xte, yte = self.data.split(fold)
            model = build_model(self.data, ModelSpec(prior=prior, seed=self.cfg.seed))
            tc = train_config(
                self.data,
                method="srmp",
                prior=prior,
                rates=(rate,),
                epochs=self.cfg.srmp_epochs,
                kl_weight=self.cfg.kl_weight,
                seed=self.cfg.seed,
            )
            desc = f"srmp {prior} {rate} f{fold}"
            fit(self.data, model, fold, tc, checkpoint=ckpt, desc=desc)
            return evaluate_rates(model, xte, yte, [rate], "prior")[rate_key(rate)]

        return self._unit(f"srmp/{prior}/{rate_key(rate)}/fold{fold}", run)

    def best_prior(self) -> str:
        """The prior whose MRMP is most accurate on the seen rates, averaged over all the
        protocol's folds (also when this run covers only some: runs split by fold agree)."""
        chosen = self._chosen_prior()
        if chosen is not None:
            return chosen
        scores = {}
        for prior in self.cfg.priors:
            accs = [
                self._mrmp(prior, f)["prior"][rate_key(r)]["accuracy"]
                for f in self.proto["test_folds"]
                for r in PAPER_RATES
            ]
            scores[prior] = statistics.mean(accs)
        best = max(scores, key=scores.__getitem__)
        record = {
            "prior": best,
            "mean_seen_accuracy": scores,
            "settings": self.settings("mrmp"),
            "protocol": self.protocol_settings(),
        }
        write_json(self.cfg.work / "srmp_prior.json", record)
        return best

    def _chosen_prior(self) -> str | None:
        """The configured SRMP prior, else the one chosen among MRMP units of this run's
        settings (None when not chosen yet, or chosen among units of other settings)."""
        if self.cfg.srmp_prior != "auto":
            return self.cfg.srmp_prior
        chosen = self._done("srmp_prior") or {}
        same = (chosen.get("settings"), chosen.get("protocol")) == (
            self.settings("mrmp"),
            self.protocol_settings(),
        )
        return chosen.get("prior") if same else None

    def run(self, stages: tuple[str, ...] = STAGES) -> None:
        """Every unit of the given stages, fold by fold; SRMP last since it uses the best MRMP
        prior (which needs the MRMP units of every fold)."""
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}; known: {', '.join(STAGES)}")
        for fold in self.folds:
            if "dense" in stages:
                self._dense(fold)
            if "mrmp" in stages:
                priors = self.cfg.priors if self.cfg.mrmp_priors is None else self.cfg.mrmp_priors
                for prior in priors:
                    self._mrmp(prior, fold)
        if "srmp" in stages:
            best = self.best_prior()
            for fold in self.folds:
                for r in self.cfg.srmp_rates or PAPER_RATES:
                    self._srmp(best, r, fold)

    def load_unit(self, name: str) -> dict:
        return json.loads((self.cfg.work / f"{name}.json").read_text())

    def _done(self, name: str) -> dict | None:
        path = self.cfg.work / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def aggregate(self, out_dir: Path) -> dict:
        """Fold means of every unit done so far -> <dataset>.json and the two plots."""

        def mean_over_folds(get: Callable[[int], float | None]) -> float | None:
            vals = [get(f) for f in self.folds]
            return round(statistics.mean(vals), 2) if vals and None not in vals else None

        def done(name: str) -> dict | None:
            unit = self._done(name)
            if unit is not None:
                self.check_unit(name, unit)
            return unit

        dense = [done(f"dense/fold{f}") for f in self.folds]
        results: dict[str, Any] = {
            "dataset": self.cfg.dataset,
            "protocol": self.proto["protocol"],
            "protocol_settings": self.protocol_settings(),
            "command": self.cfg.command,
            "params": build_model(self.data, ModelSpec()).num_params(),
            "seen_rates": list(PAPER_RATES),
            "folds": list(self.folds),
            "epochs": {
                "dense": self.cfg.epochs,
                "mrmp": self.cfg.mrmp_epochs,
                "srmp": self.cfg.srmp_epochs,
                "mp_finetune": self.cfg.mp_finetune_epochs,
            },
            "dense_lr": self.cfg.dense_lr,
            "dense_lr_schedule": self.cfg.dense_lr_schedule,
            "dense_temporal_crops": self.cfg.dense_temporal_crops,
            "dense_batch_size": self.dense_batch_size,
            "mrmp_rates_per_step": self.cfg.rates_per_step,
            "mrmp_rate_jitter": self.cfg.rate_jitter,
            "mrmp_top_rate_every_step": self.cfg.top_rate_every_step,
        }
        if all(dense):
            results["dense"] = mean_over_folds(lambda f: dense[self.folds.index(f)]["dense"])
            for key in ("mp", "mp_ft"):
                results[key] = {
                    rate_key(r): mean_over_folds(
                        lambda f, r=r, key=key: dense[self.folds.index(f)][key].get(rate_key(r))
                    )
                    for r in PAPER_RATES
                }
        srmp_prior = self._chosen_prior()
        if srmp_prior:
            results["srmp_prior"] = srmp_prior
            table = {}
            for r in PAPER_RATES:
                runs = [done(f"srmp/{srmp_prior}/{rate_key(r)}/fold{f}") for f in self.folds]
                if all(runs):
                    table[rate_key(r)] = round(statistics.mean(u["accuracy"] for u in runs), 2)
            results["srmp"] = table
        results["mrmp"], results["mrmp_exact"], results["observed_rate"] = {}, {}, {}
        results["rate_error_max"] = {}
        for prior in self.cfg.priors:
            runs = [done(f"mrmp/{prior}/fold{f}") for f in self.folds]
            if not all(runs):
                continue
            keys = list(runs[0]["prior"])
            for mode, target in (("prior", "mrmp"), ("exact", "mrmp_exact")):
                results[target][prior] = {
                    k: round(statistics.mean(u[mode][k]["accuracy"] for u in runs), 2) for k in keys
                }
            results["observed_rate"][prior] = {
                k: round(statistics.mean(u["prior"][k]["observed_rate"] for u in runs), 4)
                for k in keys
            }
            # The worst |observed - requested| over every fold at rates 0.50..0.98, per mode.
            checked = [k for k in keys if 0.5 <= float(k) <= 0.98]
            results["rate_error_max"][prior] = {
                mode: round(
                    max(abs(u[mode][k]["observed_rate"] - float(k)) for u in runs for k in checked),
                    5,
                )
                for mode in ("prior", "exact")
            }
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / f"{self.cfg.dataset}.json", results)
        if "dense" in results and results["mrmp"]:
            grid = {rate_key(r) for r in RATE_GRID}
            figure = {
                **results,
                "mrmp": {
                    p: {k: v for k, v in t.items() if k in grid} for p, t in results["mrmp"].items()
                },
                "observed_rate": {
                    p: {k: v for k, v in t.items() if k in grid}
                    for p, t in results["observed_rate"].items()
                },
            }
            plot_accuracy(figure, out_dir / f"{self.cfg.dataset}_accuracy.png")
            plot_observed_rate(figure, out_dir / f"{self.cfg.dataset}_observed_rate.png")
            (out_dir / f"{self.cfg.dataset}.md").write_text(results_table(results))
        return results


# Rates of the README table: the seen rates, and unseen ones between and beyond them.
TABLE_RATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99)


def results_table(results: dict) -> str:
    """Markdown: accuracy (%) per method and rate; seen rates in bold, then the observed-rate
    errors. Written beside <dataset>.json so the README quotes a generated table."""
    seen = {rate_key(r) for r in results["seen_rates"]}
    priors = list(results["mrmp"])
    columns = [("MP", results.get("mp", {})), ("MP+FT", results.get("mp_ft", {}))]
    columns.append((f"SRMP ({results.get('srmp_prior', '-')})", results.get("srmp", {})))
    columns += [(f"MRMP {p}", results["mrmp"][p]) for p in priors]

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = [
        f"Dense: {cell(results.get('dense'))}% ({results['protocol']}).",
        "",
        "| rate | " + " | ".join(name for name, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for r in TABLE_RATES:
        key = rate_key(r)
        label = f"**{key}**" if key in seen else f"{key} (unseen)"
        lines.append(f"| {label} | " + " | ".join(cell(t.get(key)) for _, t in columns) + " |")
    lines += ["", "Worst observed-rate error over folds and rates 0.50-0.98 (points):", ""]
    for p, err in results.get("rate_error_max", {}).items():
        lines.append(
            f"- {p}: prior mode {100 * err['prior']:.2f}, exact mode {100 * err['exact']:.3f}"
        )
    return "\n".join(lines) + "\n"

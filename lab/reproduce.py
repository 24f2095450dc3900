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
from pathlib import Path
from typing import Any, cast

from lab.config import Experiment, MrmpSettings, UnitKind
from lab.experiment import Data, ModelSpec, build_model, fit, load_data, train_config
from lab.plots import plot_accuracy, plot_observed_rate
from lab.tables import results_table
from mrmp.derive import derive_masks
from mrmp.gcn import MaskGate
from mrmp.rates import MODES, rate_key
from training.evaluate import RATE_GRID, accuracy, evaluate_rates
from training.train import PAPER_RATES, TrainConfig

# Dense (with MP and MP-FT), MRMP per prior, then SRMP per seen rate with the best prior.
STAGES: tuple[str, ...] = ("dense", "mrmp", "srmp")
SEED = 0  # every unit's


def unit_kind(name: str) -> UnitKind:
    """The kind of the unit named `name` (dense/fold0 -> dense)."""
    return cast(UnitKind, name.split("/")[0])


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (a temporary file, then a rename): an interrupt never leaves half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def mrmp_config(
    data: Data, settings: MrmpSettings, prior: str, epochs: int | None = None
) -> TrainConfig:
    """An experiment file's MRMP settings as a training configuration for `data` (`epochs`
    overriding the file's)."""
    return train_config(
        data,
        method="mrmp",
        prior=prior,
        epochs=epochs or settings.epochs,
        rates_per_step=settings.rates_per_step,
        rate_jitter=settings.rate_jitter,
        always_top_rate=settings.top_rate_every_step,
        kl_weight=settings.kl_weight,
        missing_views=settings.missing_views or 0,
        inplace_distill=bool(settings.inplace_distill),
        seed=SEED,
        **{
            key: value
            for key in ("lr", "lr_schedule", "batch_size", "temporal_crops")
            if (value := getattr(settings, key)) is not None
        },
    )


class Reproduction:
    """The units of one experiment (`configs/<dataset>.toml`) in the work folder `work`.

    folds, mrmp_priors and srmp_rates select part of the work (None: all of it) to split a run
    across processes; they do not change results. The SRMP prior is still chosen among all of
    the experiment's priors, over all its folds. `command` is recorded in the results JSON.
    """

    def __init__(
        self,
        experiment: Experiment,
        work: Path,
        *,
        folds: tuple[int, ...] | None = None,
        mrmp_priors: tuple[str, ...] | None = None,
        srmp_rates: tuple[float, ...] | None = None,
        command: str = "",
        data_dir: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.exp = experiment
        self.work = work
        self.proto = experiment.protocol
        self.folds = folds if folds is not None else self.proto.test_folds
        self.mrmp_priors = mrmp_priors if mrmp_priors is not None else experiment.mrmp.priors
        self.srmp_rates = srmp_rates or PAPER_RATES
        self.command = command
        self.data_dir = data_dir
        self.log = log
        self._data: Data | None = None

    @property
    def data(self) -> Data:
        if self._data is None:
            self._data = load_data(self.exp.dataset, data_dir=self.data_dir, proto=self.proto)
        return self._data

    @property
    def dense_batch_size(self) -> int:
        return self.exp.dense.batch_size or self.proto.batch_size

    def record(self, kind: UnitKind) -> dict[str, Any]:
        """What a unit of `kind` records of the settings that shaped it."""
        return {
            "settings": self.exp.unit_settings(kind),
            "protocol": self.proto.record(),
            "settings_hash": self.exp.unit_hash(kind),
        }

    def check_unit(self, name: str, unit: dict) -> None:
        """Refuse a unit made under other settings or another protocol than this run's,
        naming what differs (ValueError)."""
        path = self.work / f"{name}.json"
        kind = unit_kind(name)
        made = unit.get("settings_hash")
        if made is None:
            raise ValueError(f"{path} records no settings hash: delete it to retrain it")
        if made == self.exp.unit_hash(kind):
            return
        differ = self.exp.differences(kind, unit.get("settings", {}), unit.get("protocol", {}))
        raise ValueError(
            f"{path} was made with {'; '.join(differ) or f'settings hash {made}'}, not those of "
            f"{self.exp.source}: run with its config, or delete it to retrain it"
        )

    def _unit(self, name: str, run: Callable[[Path], dict]) -> dict:
        path = self.work / f"{name}.json"
        if path.exists():
            unit = json.loads(path.read_text())
            self.check_unit(name, unit)
            return unit
        self.log(f"[{self.exp.dataset}] {name}")
        result = {**run(self.work / f"{name}.ckpt"), **self.record(unit_kind(name))}
        write_json(path, result)
        (self.work / f"{name}.ckpt").unlink(missing_ok=True)
        return result

    def _dense(self, fold: int) -> dict:
        def run(ckpt: Path) -> dict:
            _, _, xte, yte = self.data.split(fold)
            spec = ModelSpec(prior="gaussian", seed=SEED)
            model = build_model(self.data, spec)
            recipe = self.exp.dense
            tc = train_config(
                self.data,
                method="dense",
                epochs=recipe.epochs,
                lr=recipe.lr,
                lr_schedule=recipe.lr_schedule,
                temporal_crops=recipe.temporal_crops,
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
                if recipe.mp_finetune_epochs > 0:
                    ft = train_config(self.data, method="dense", epochs=recipe.mp_finetune_epochs)
                    fit(self.data, model, fold, ft, masks=masks, desc=f"mp-ft {r} f{fold}")
                    acc = accuracy(lambda x, m=masks: model(x, MaskGate(m)), xte, yte)
                    out["mp_ft"][rate_key(r)] = acc
                    model.load_state_dict(state)
            return out

        return self._unit(f"dense/fold{fold}", run)

    def mrmp_config(self, prior: str) -> TrainConfig:
        """The MRMP training settings of this reproduction (also those of the release)."""
        return mrmp_config(self.data, self.exp.mrmp, prior)

    def _mrmp(self, prior: str, fold: int) -> dict:
        def run(ckpt: Path) -> dict:
            _, _, xte, yte = self.data.split(fold)
            model = build_model(self.data, ModelSpec(prior=prior, seed=SEED))
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
            model = build_model(self.data, ModelSpec(prior=prior, seed=SEED))
            tc = train_config(
                self.data,
                method="srmp",
                prior=prior,
                rates=(rate,),
                epochs=self.exp.srmp.epochs,
                kl_weight=self.exp.srmp.kl_weight,
                seed=SEED,
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
        for prior in self.exp.mrmp.priors:
            accs = [
                self._mrmp(prior, f)["prior"][rate_key(r)]["accuracy"]
                for f in self.proto.test_folds
                for r in PAPER_RATES
            ]
            scores[prior] = statistics.mean(accs)
        best = max(scores, key=scores.__getitem__)
        record = {"prior": best, "mean_seen_accuracy": scores, **self.record("mrmp")}
        write_json(self.work / "srmp_prior.json", record)
        return best

    def _chosen_prior(self) -> str | None:
        """The prior chosen among MRMP units of this run's settings (None when not chosen yet,
        or chosen among units of other settings)."""
        chosen = self._done("srmp_prior") or {}
        same = chosen.get("settings_hash") == self.exp.unit_hash("mrmp")
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
                for prior in self.mrmp_priors:
                    self._mrmp(prior, fold)
        if "srmp" in stages:
            best = self.best_prior()
            for fold in self.folds:
                for r in self.srmp_rates:
                    self._srmp(best, r, fold)

    def load_unit(self, name: str) -> dict:
        return json.loads((self.work / f"{name}.json").read_text())

    def _done(self, name: str) -> dict | None:
        path = self.work / f"{name}.json"
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
        exp = self.exp
        results: dict[str, Any] = {
            "dataset": exp.dataset,
            "protocol": self.proto.description,
            "protocol_settings": self.proto.record(),
            "command": self.command,
            "params": build_model(self.data, ModelSpec()).num_params(),
            "seen_rates": list(PAPER_RATES),
            "folds": list(self.folds),
            "epochs": {
                "dense": exp.dense.epochs,
                "mrmp": exp.mrmp.epochs,
                "srmp": exp.srmp.epochs,
                "mp_finetune": exp.dense.mp_finetune_epochs,
            },
            "dense_lr": exp.dense.lr,
            "dense_lr_schedule": exp.dense.lr_schedule,
            "dense_temporal_crops": exp.dense.temporal_crops,
            "dense_batch_size": self.dense_batch_size,
            "mrmp_rates_per_step": exp.mrmp.rates_per_step,
            "mrmp_rate_jitter": exp.mrmp.rate_jitter,
            "mrmp_top_rate_every_step": exp.mrmp.top_rate_every_step,
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
        for prior in exp.mrmp.priors:
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
                for mode in MODES
            }
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / f"{exp.dataset}.json", results)
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
            plot_accuracy(figure, out_dir / f"{exp.dataset}_accuracy.png")
            plot_observed_rate(figure, out_dir / f"{exp.dataset}_observed_rate.png")
            (out_dir / f"{exp.dataset}.md").write_text(results_table(results))
        return results

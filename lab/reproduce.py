"""The paper's results on one dataset, by one resumable command.

Work is split into units (one per method, prior, seed, fold and, for SRMP, rate), named
`dense/seed<s>/fold<f>`, `mrmp/<prior>/seed<s>/fold<f>` and `srmp/<prior>/<rate>/seed<s>/fold<f>`.
Each unit writes its result as JSON under the work folder, and its training checkpoint beside
it, so an interrupted run resumes where it stopped. `aggregate` turns whatever units are done
into the results JSON (per seed the mean over folds, then the mean over seeds and, with two or
more seeds, their sample standard deviation), the table and the two plots (the paper's
Figure 4).

What makes a unit reproducible: its settings and protocol (`settings_hash`), its seed (in its
name: the network's initialization, the batch order, the augmentation and the rates drawn per
step all come from it), and what it ran under, which each unit records beside its result and
the hash leaves out: torch's version, its intra-op thread count (a CPU reduction may sum in
another order with other threads) and whether torch's deterministic algorithms were on (the
reproduction turns them on for its runs: every op of the CPU training path has one, and a
synthetic run gives the same units with them on as off).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import torch

from lab.config import Experiment, MrmpSettings, SrmpSettings, UnitKind
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
SEED = 0  # the released model's and the robustness study's; the reproduction's first seed


def unit_kind(name: str) -> UnitKind:
    """The kind of the unit named `name` (dense/seed0/fold0 -> dense)."""
    return cast(UnitKind, name.split("/")[0])


def unit_seed(name: str) -> int:
    """The seed of the unit named `name` (dense/seed1/fold0 -> 1; ValueError without one)."""
    for part in name.split("/"):
        if part.startswith("seed") and part[4:].isdigit():
            return int(part[4:])
    raise ValueError(f"unit name {name!r} names no seed")


def dense_unit(seed: int, fold: int) -> str:
    return f"dense/seed{seed}/fold{fold}"


def mrmp_unit(prior: str, seed: int, fold: int) -> str:
    return f"mrmp/{prior}/seed{seed}/fold{fold}"


def srmp_unit(prior: str, rate: float, seed: int, fold: int) -> str:
    return f"srmp/{prior}/{rate_key(rate)}/seed{seed}/fold{fold}"


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """torch's deterministic algorithms on within the block (an op without one raises
    RuntimeError rather than run nondeterministically), the previous setting restored after."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def run_record(seed: int) -> dict[str, Any]:
    """What a unit records of the run that made it beside its settings (none of it enters the
    settings hash): its seed, torch's version, intra-op threads and deterministic mode."""
    return {
        "seed": seed,
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "torch": torch.__version__,
    }


def over_seeds(values: list[list[float]], digits: int) -> tuple[float, float | None]:
    """The mean over seeds of each seed's mean (`values`: per seed, a value per fold) and the
    sample standard deviation of those means (None with one seed), rounded to `digits`."""
    means = [statistics.mean(per_seed) for per_seed in values]
    sd = round(statistics.stdev(means), digits) if len(means) > 1 else None
    return round(statistics.mean(means), digits), sd


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (a temporary file, then a rename): an interrupt never leaves half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def mrmp_config(
    data: Data, settings: MrmpSettings, prior: str, epochs: int | None = None, seed: int = SEED
) -> TrainConfig:
    """An experiment file's MRMP settings as a training configuration for `data` (`epochs`
    overriding the file's), trained with `seed`."""
    return train_config(
        data,
        method="mrmp",
        prior=prior,
        epochs=epochs or settings.epochs,
        rates_per_step=settings.rates_per_step,
        rate_jitter=settings.rate_jitter,
        always_top_rate=settings.top_rate_every_step,
        kl_weight=settings.kl_weight,
        inplace_distill=bool(settings.inplace_distill),
        seed=seed,
        **recipe_overrides(settings),
    )


def recipe_overrides(settings: MrmpSettings | SrmpSettings) -> dict[str, Any]:
    """The optimizer, batch, view, KL-bin and observed-rate-term settings an experiment file
    sets for a method, as TrainConfig fields (those it leaves out, or sets off, keep
    TrainConfig's defaults)."""
    keys = (
        "lr",
        "lr_schedule",
        "batch_size",
        "temporal_crops",
        "missing_views",
        "kl_bins",
        "rate_weight",
    )
    return {key: value for key in keys if (value := getattr(settings, key)) is not None}


class Reproduction:
    """The units of one experiment (`configs/<dataset>.toml`) in the work folder `work`.

    seeds, folds, mrmp_priors and srmp_rates select part of the work (None: all of it) to split
    a run across processes; they do not change results. The SRMP prior is still chosen among all
    of the experiment's priors, over all its seeds and folds. `command` is recorded in the
    results JSON.
    """

    def __init__(
        self,
        experiment: Experiment,
        work: Path,
        *,
        seeds: tuple[int, ...] | None = None,
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
        self.seeds = seeds if seeds is not None else experiment.seeds
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
        """Refuse a unit made under other settings or another protocol than this run's, or
        recording another seed than its name's, naming what differs (ValueError)."""
        path = self.work / f"{name}.json"
        kind = unit_kind(name)
        if unit.get("seed", unit_seed(name)) != unit_seed(name):
            raise ValueError(f"{path} records seed {unit['seed']}, not its name's")
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
        with deterministic_algorithms():
            result = {**run(self.work / f"{name}.ckpt"), **run_record(unit_seed(name))}
        result.update(self.record(unit_kind(name)))
        write_json(path, result)
        (self.work / f"{name}.ckpt").unlink(missing_ok=True)
        return result

    def _dense(self, seed: int, fold: int) -> dict:
        def run(ckpt: Path) -> dict:
            _, _, xte, yte = self.data.split(fold)
            spec = ModelSpec(prior="gaussian", seed=seed)
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
            fit(self.data, model, fold, tc, checkpoint=ckpt, desc=f"dense s{seed} f{fold}")
            out: dict[str, Any] = {"dense": accuracy(model, xte, yte), "mp": {}, "mp_ft": {}}
            state = {k: v.clone() for k, v in model.state_dict().items()}
            for r in PAPER_RATES:
                # Magnitude pruning per layer of the trained dense net, no retraining.
                masks, _ = derive_masks(model, r, mode="exact")
                out["mp"][rate_key(r)] = accuracy(
                    lambda x, m=masks: model(x, MaskGate(m)), xte, yte
                )
                if recipe.mp_finetune_epochs > 0:
                    ft = train_config(
                        self.data,
                        method="dense",
                        epochs=recipe.mp_finetune_epochs,
                        seed=seed,
                        **recipe.finetune_overrides(),
                    )
                    desc = f"mp-ft {r} s{seed} f{fold}"
                    fit(self.data, model, fold, ft, masks=masks, desc=desc)
                    acc = accuracy(lambda x, m=masks: model(x, MaskGate(m)), xte, yte)
                    out["mp_ft"][rate_key(r)] = acc
                    model.load_state_dict(state)
            return out

        return self._unit(dense_unit(seed, fold), run)

    def mrmp_config(self, prior: str, seed: int = SEED) -> TrainConfig:
        """The MRMP training settings of this reproduction (also those of the release)."""
        return mrmp_config(self.data, self.exp.mrmp, prior, seed=seed)

    def _mrmp(self, prior: str, seed: int, fold: int) -> dict:
        def run(ckpt: Path) -> dict:
            _, _, xte, yte = self.data.split(fold)
            model = build_model(self.data, ModelSpec(prior=prior, seed=seed))
            tc = self.mrmp_config(prior, seed)
            desc = f"mrmp {prior} s{seed} f{fold}"
            fit(self.data, model, fold, tc, checkpoint=ckpt, desc=desc)
            rates = sorted({*tc.rates, *RATE_GRID})
            return {
                "seen_rates": list(tc.rates),
                "prior": evaluate_rates(model, xte, yte, rates, "prior"),
                "exact": evaluate_rates(model, xte, yte, rates, "exact"),
            }

        return self._unit(mrmp_unit(prior, seed, fold), run)

    def srmp_config(self, prior: str, rate: float, seed: int = SEED) -> TrainConfig:
        """The SRMP training settings of this reproduction for one rate."""
        settings = self.exp.srmp
        return train_config(
            self.data,
            method="srmp",
            prior=prior,
            rates=(rate,),
            epochs=settings.epochs,
            kl_weight=settings.kl_weight,
            seed=seed,
            **recipe_overrides(settings),
        )

    def _srmp(self, prior: str, rate: float, seed: int, fold: int) -> dict:
        def run(ckpt: Path) -> dict:
            _, _, xte, yte = self.data.split(fold)
            model = build_model(self.data, ModelSpec(prior=prior, seed=seed))
            tc = self.srmp_config(prior, rate, seed)
            desc = f"srmp {prior} {rate} s{seed} f{fold}"
            fit(self.data, model, fold, tc, checkpoint=ckpt, desc=desc)
            return evaluate_rates(model, xte, yte, [rate], "prior")[rate_key(rate)]

        return self._unit(srmp_unit(prior, rate, seed, fold), run)

    def best_prior(self) -> str:
        """The prior whose MRMP is most accurate on the seen rates, averaged over all the
        experiment's seeds and the protocol's folds (also when this run covers only some: runs
        split by seed or fold agree); MRMP units missing are trained."""
        chosen = self._chosen_prior()
        if chosen is not None:
            return chosen
        scores = {}
        for prior in self.exp.mrmp.priors:
            accs = [
                self._mrmp(prior, s, f)["prior"][rate_key(r)]["accuracy"]
                for s in self.exp.seeds
                for f in self.proto.test_folds
                for r in PAPER_RATES
            ]
            scores[prior] = statistics.mean(accs)
        best = max(scores, key=scores.__getitem__)
        seeds = list(self.exp.seeds)
        record = {"prior": best, "seeds": seeds, "mean_seen_accuracy": scores}
        record.update(self.record("mrmp"))
        write_json(self.work / "srmp_prior.json", record)
        return best

    def _chosen_prior(self) -> str | None:
        """The prior chosen among MRMP units of this run's settings and seeds (None when not
        chosen yet, or chosen among units of other settings or seeds)."""
        chosen = self._done("srmp_prior") or {}
        same = chosen.get("settings_hash") == self.exp.unit_hash("mrmp")
        return chosen.get("prior") if same and chosen.get("seeds") == list(self.exp.seeds) else None

    def run(self, stages: tuple[str, ...] = STAGES) -> None:
        """Every unit of the given stages, seed by seed and fold by fold; SRMP last since it
        uses the best MRMP prior (which needs the MRMP units of every seed and fold)."""
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}; known: {', '.join(STAGES)}")
        runs = [(s, f) for s in self.seeds for f in self.folds]
        for seed, fold in runs:
            if "dense" in stages:
                self._dense(seed, fold)
            if "mrmp" in stages:
                for prior in self.mrmp_priors:
                    self._mrmp(prior, seed, fold)
        if "srmp" in stages:
            best = self.best_prior()
            for seed, fold in runs:
                for r in self.srmp_rates:
                    self._srmp(best, r, seed, fold)

    def load_unit(self, name: str) -> dict:
        return json.loads((self.work / f"{name}.json").read_text())

    def _done(self, name: str) -> dict | None:
        path = self.work / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def units_of(self, name: Callable[[int, int], str]) -> list[list[dict]] | None:
        """The units `name(seed, fold)` of this run's seeds (each a list over its folds), each
        checked (`check_unit`); None unless every one is done."""
        units = []
        for s in self.seeds:
            per_seed = []
            for f in self.folds:
                unit = self._done(name(s, f))
                if unit is None:
                    return None
                self.check_unit(name(s, f), unit)
                per_seed.append(unit)
            units.append(per_seed)
        return units

    def aggregate(self, out_dir: Path) -> dict:
        """Every unit done so far -> <dataset>.json, its table and the two plots.

        Each number is the mean over seeds of the fold means (one seed: the fold mean); with
        two or more seeds, "spread" holds the sample standard deviation over seeds of the fold
        means at the same place as each accuracy. An entry appears only when all its (seed,
        fold) units are done; the worst observed-rate error is over all of them."""

        def summary(
            units: list[list[dict]], get: Callable[[dict], float | None], digits: int = 2
        ) -> tuple[float | None, float | None]:
            """`over_seeds` of `get` over the units; both None where a unit lacks the value."""
            values = [[get(u) for u in per_seed] for per_seed in units]
            if not self.folds or any(None in per_seed for per_seed in values):
                return None, None
            return over_seeds(cast(list[list[float]], values), digits)

        def table(
            units: list[list[dict]], keys: list[str], get: Callable[[dict, str], float | None]
        ) -> tuple[dict[str, float | None], dict[str, float | None]]:
            pairs = {k: summary(units, lambda u, k=k: get(u, k)) for k in keys}
            return {k: m for k, (m, _) in pairs.items()}, {k: sd for k, (_, sd) in pairs.items()}

        exp = self.exp
        results: dict[str, Any] = {
            "dataset": exp.dataset,
            "protocol": self.proto.description,
            "protocol_settings": self.proto.record(),
            "command": self.command,
            "params": build_model(self.data, ModelSpec()).num_params(),
            "seen_rates": list(PAPER_RATES),
            "folds": list(self.folds),
            "seeds": list(self.seeds),
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
        spread: dict[str, Any] = {}
        seen = [rate_key(r) for r in PAPER_RATES]
        dense = self.units_of(dense_unit)
        if dense is not None:
            results["dense"], spread["dense"] = summary(dense, lambda u: u["dense"])
            for key in ("mp", "mp_ft"):
                results[key], spread[key] = table(dense, seen, lambda u, k, m=key: u[m].get(k))
        srmp_prior = self._chosen_prior()
        if srmp_prior:
            results["srmp_prior"] = srmp_prior
            results["srmp"], spread["srmp"] = {}, {}
            for r in PAPER_RATES:
                units = self.units_of(lambda s, f, r=r: srmp_unit(srmp_prior, r, s, f))
                if units is not None:
                    key = rate_key(r)
                    results["srmp"][key], spread["srmp"][key] = summary(
                        units, lambda u: u["accuracy"]
                    )
        for target in (
            "mrmp",
            "mrmp_exact",
            "observed_rate",
            "rate_error_max",
            "rate_error_of_mean",
        ):
            results[target] = {}
        spread["mrmp"], spread["mrmp_exact"] = {}, {}
        for prior in exp.mrmp.priors:
            units = self.units_of(lambda s, f, p=prior: mrmp_unit(p, s, f))
            if units is None:
                continue
            keys = list(units[0][0]["prior"])
            for mode, target in (("prior", "mrmp"), ("exact", "mrmp_exact")):
                results[target][prior], spread[target][prior] = table(
                    units, keys, lambda u, k, m=mode: u[m][k]["accuracy"]
                )
            results["observed_rate"][prior] = {
                k: summary(units, lambda u, k=k: u["prior"][k]["observed_rate"], 4)[0] for k in keys
            }
            # The worst |observed - requested| over every seed and fold at rates 0.50..0.98.
            checked = [k for k in keys if 0.5 <= float(k) <= 0.98]
            every = [u for per_seed in units for u in per_seed]
            results["rate_error_max"][prior] = {
                mode: round(
                    max(
                        abs(u[mode][k]["observed_rate"] - float(k)) for u in every for k in checked
                    ),
                    5,
                )
                for mode in MODES
            }
            # Issue 21's measure: the worst |mean observed - requested|, the mean over seeds
            # of the fold means, in prior mode.
            means = results["observed_rate"][prior]
            if all(means[k] is not None for k in checked):
                results["rate_error_of_mean"][prior] = round(
                    max(abs(means[k] - float(k)) for k in checked), 5
                )
        if len(self.seeds) > 1:
            results["spread"] = spread
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

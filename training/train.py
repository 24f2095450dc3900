"""Training: dense, SRMP and MRMP objectives (METHOD section 5), and masked fine-tuning for
the MP baseline."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from mrmp.bandstop import annealed_crispness
from mrmp.gcn import Gate, LatentGCN, MaskGate, SoftGate, dense_gate
from training.kld import SoftHistogramKL, SoftRateGap

# The paper's seen rates.
PAPER_RATES: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98)
# Rates below the paper's range that the service also accepts, so MRMP trains them too [ours].
LOW_RATES: tuple[float, ...] = (0.0, 0.25)
METHODS: tuple[str, ...] = ("dense", "srmp", "mrmp")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")


@dataclass
class TrainConfig:
    """One training run's settings: the objective (`method`), the rates and how each step
    draws them, the KL term, the optimizer and its schedule, the band-stop's annealing and
    the augmentations. Raises ValueError for an unknown method or schedule, or a crop setting
    out of range."""

    method: str = "mrmp"
    prior: str = "gaussian"
    rates: tuple[float, ...] = LOW_RATES + PAPER_RATES
    rates_per_step: int | None = 4  # None: every rate of `rates` at every step
    # Stratified jitter [ours]: each step draws each rate uniformly between the midpoints to
    # its neighbours (the last one up to max_rate), so every rate in [0, max_rate] is trained.
    rate_jitter: bool = True
    max_rate: float = 0.99
    # Sandwich rule [ours, after slimmable networks]: every step trains the highest rate (its
    # jitter interval), the others drawn at random; the sparsest networks, which share the
    # fewest weights with the rest, otherwise see a fraction of the steps. Needs 2+ rates per
    # step (with one, every rate is drawn at random).
    always_top_rate: bool = True
    # In-place distillation [ours, after universally slimmable networks, Yu & Huang 2019]:
    # every step also trains the lowest rate (its jitter interval) on the labels, and the
    # step's other rates on its predictions (detached), so the sparse networks learn from the
    # densest one rather than from the labels alone. Needs 2+ rates per step.
    inplace_distill: bool = False
    kl_weight: float = 1.0
    kl_bins: int = 48
    kl_sample: int | None = 32768
    # The observed-rate term [ours]: this weight times SoftRateGap at the seen rates' prior
    # thresholds, beside the KL; 0 (off) leaves the paper's objective.
    rate_weight: float = 0.0
    epochs: int = 300
    batch_size: int = 200
    lr: float = 1e-3
    # "constant", or "cosine": per step from `lr` down to 0 over the whole run [ours].
    lr_schedule: str = "constant"
    # Temporal crops [ours]: each training sequence is described whole and as
    # temporal_crops - 1 random contiguous crops of crop_min..1 of its frames, made once from
    # the seed (training.augment.crop_views); each epoch shows every sequence once, as one of its
    # views drawn at random, so the steps per epoch do not change.
    temporal_crops: int = 1
    crop_min: float = 0.8
    # Missing-detection views [ours]: missing_views more views of each training sequence, each
    # with detections removed as sensors lose them (frames, a person, a limb, scattered joints),
    # filled by the serving rule and described (training.augment.missing_views); drawn as the
    # crop views are.
    missing_views: int = 0
    sigma_start: float = 1.0
    sigma_end: float = 100.0
    seed: int = 0
    checkpoint_every: int = 25
    # AugmentConfig fields (training.augment), applied by lab.experiment.fit [ours].
    augment: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"unknown lr_schedule {self.lr_schedule!r}; known: {', '.join(LR_SCHEDULES)}"
            )
        if self.temporal_crops < 1:
            raise ValueError(f"temporal_crops must be >= 1, got {self.temporal_crops}")
        if self.missing_views < 0:
            raise ValueError(f"missing_views must be >= 0, got {self.missing_views}")
        if self.rate_weight < 0:
            raise ValueError(f"rate_weight must be >= 0, got {self.rate_weight}")
        if not 0.0 < self.crop_min <= 1.0:
            raise ValueError(f"crop_min must lie in (0, 1], got {self.crop_min}")
        if self.method == "dense":
            self.rates = (0.0,)
        self.rates = tuple(float(r) for r in self.rates)

    def to_dict(self) -> dict:
        """The settings as a manifest records them; missing_views, inplace_distill and
        rate_weight only when on, so a run without them records what runs made before the
        options did."""
        settings = asdict(self)
        for option in ("missing_views", "inplace_distill", "rate_weight"):
            if not settings[option]:
                del settings[option]
        return settings


# A label-preserving transform of a batch of descriptors (B, J, F), given a generator.
Augment = Callable[[Tensor, torch.Generator], Tensor]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def jitter_bounds(rates: tuple[float, ...], max_rate: float) -> list[tuple[float, float]]:
    """For each rate (sorted), the interval its jittered draws come from."""
    r = sorted(rates)
    mids = [(a + b) / 2 for a, b in itertools.pairwise(r)]
    lows = [r[0], *mids]
    highs = [*mids, max(max_rate, r[-1])]
    return list(zip(lows, highs, strict=True))


def step_gates(
    model: LatentGCN, cfg: TrainConfig, progress: float, gen: torch.Generator
) -> list[Gate]:
    """The band-stop gates of one training step: the rates drawn for it (`rates_per_step`,
    the sandwich rule, jitter), each at the crispness of `progress` in [0, 1] through the run.
    With `inplace_distill` the first gate is the lowest rate's, the teacher of the others."""
    rates = sorted(cfg.rates)
    picked = list(range(len(rates)))
    if cfg.rates_per_step and cfg.rates_per_step < len(rates):
        if cfg.inplace_distill and cfg.rates_per_step > 2:
            top = len(rates) - 1
            middle = torch.randperm(top - 1, generator=gen)[: cfg.rates_per_step - 2] + 1
            picked = [0, *middle.tolist(), top]
        elif cfg.always_top_rate and cfg.rates_per_step > 1:
            top = len(rates) - 1
            rest = torch.randperm(top, generator=gen)[: cfg.rates_per_step - 1].tolist()
            picked = [*rest, top]
        else:
            picked = torch.randperm(len(rates), generator=gen)[: cfg.rates_per_step].tolist()
    if cfg.rate_jitter:
        bounds = jitter_bounds(tuple(rates), cfg.max_rate)
        u = torch.rand(len(picked), generator=gen).tolist()
        rates = [bounds[i][0] + u[j] * (bounds[i][1] - bounds[i][0]) for j, i in enumerate(picked)]
    else:
        rates = [rates[i] for i in picked]
    gates = []
    for r in rates:
        a = model.prior.threshold(r)
        sigma = annealed_crispness(a, progress, cfg.sigma_start, cfg.sigma_end)
        gates.append(SoftGate(a, sigma, model.prunable))
    return gates


def train(
    model: LatentGCN,
    x: Tensor,
    y: Tensor,
    cfg: TrainConfig,
    *,
    masks: dict[str, Tensor] | None = None,
    checkpoint: Path | None = None,
    desc: str | None = None,
    show_progress: bool = True,
    augment: Augment | None = None,
) -> list[dict]:
    """Train in place; returns the per-epoch history. With `masks`, the dense objective is
    trained under those fixed masks (fine-tuning a magnitude-pruned network). `augment`
    transforms each mini-batch of descriptors, drawing from the training generator. `x` is
    (N, J, F), or (V, N, J, F): V views of each sample, one drawn at random each epoch.

    A `checkpoint` file is written every `checkpoint_every` epochs and resumed from if present.
    """
    # Near-binary band-stops make weights like 1e-40: denormal floats slow matmuls ~100x.
    torch.set_flush_denormal(True)
    seed_everything(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    views = x if x.dim() == 4 else x.unsqueeze(0)
    n = views.shape[1]
    steps_per_epoch = -(-n // cfg.batch_size)
    schedule = None
    if cfg.lr_schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(cfg.epochs * steps_per_epoch, 1)
        )
    kl = SoftHistogramKL(model.prior, bins=cfg.kl_bins, sample=cfg.kl_sample)
    use_kl = cfg.method != "dense" and cfg.kl_weight > 0
    rate_gap = None
    if cfg.method != "dense" and cfg.rate_weight > 0:
        rate_gap = SoftRateGap(model.prior, cfg.rates, kernel=kl.h, sample=cfg.kl_sample)
    history: list[dict] = []
    start = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["epoch"])
        history = list(state.get("history", []))
    bar = tqdm(
        range(start, cfg.epochs),
        initial=start,
        total=cfg.epochs,
        desc=desc or cfg.method,
        disable=not show_progress,
        leave=False,
    )
    model.train()
    for epoch in bar:
        order = torch.randperm(n, generator=gen)
        # A view is drawn only when there are several, so that a run without crops draws the
        # same batches from the generator as the units trained without the option.
        view = torch.randint(len(views), (n,), generator=gen) if len(views) > 1 else None
        ce_sum = kl_sum = gap_sum = 0.0
        steps = 0
        for s in range(0, n, cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            xb = views[0, idx] if view is None else views[view[idx], idx]
            yb = y[idx]
            if augment is not None:
                xb = augment(xb, gen)
            progress = (epoch + s / n) / max(cfg.epochs - 1, 1)
            gates: list[Gate]
            if cfg.method == "dense":
                gates = [MaskGate(masks) if masks is not None else dense_gate]
            else:
                gates = step_gates(model, cfg, progress, gen)
            if cfg.inplace_distill and len(gates) > 1:
                teacher = model(xb, gates[0])
                soft = teacher.detach().softmax(dim=-1)
                losses = [F.cross_entropy(teacher, yb)]
                losses += [F.cross_entropy(model(xb, g), soft) for g in gates[1:]]
                ce = torch.stack(losses).mean()
            else:
                ce = torch.stack([F.cross_entropy(model(xb, g), yb) for g in gates]).mean()
            loss = ce
            if use_kl:
                div = kl([z for _, z in model.latents()])
                loss = ce + cfg.kl_weight * div
                kl_sum += float(div.detach())
            if rate_gap is not None:
                gap = rate_gap([z for _, z in model.latents()])
                loss = loss + cfg.rate_weight * gap
                gap_sum += float(gap.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
            ce_sum += float(ce.detach())
            steps += 1
        record = {
            "epoch": epoch + 1,
            "ce": ce_sum / steps,
            "kl": kl_sum / steps,
            "lr": opt.param_groups[0]["lr"],  # for the next step
        }
        if rate_gap is not None:
            record["rate_gap"] = gap_sum / steps
        history.append(record)
        bar.set_postfix(ce=f"{record['ce']:.3f}", kl=f"{record['kl']:.4f}")
        if checkpoint is not None and (
            (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs
        ):
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "schedule": schedule.state_dict() if schedule is not None else None,
                    "generator": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "epoch": epoch + 1,
                    "history": history,
                },
                tmp,
            )
            tmp.replace(checkpoint)
    model.eval()
    return history

"""The rate policy: which derived network serves a request.

Plain functions of what the request asked (`Ask`), the served model's rate range and tiers
(`RatePolicy`) and the rate table's rows; no model is needed to call them. Each refusal is
raised as its own error type (service.errors).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

from mrmp.rates import MODES, Mode, RateKey
from service.errors import (
    ConflictingChoicesError,
    ModeConflictsWithNeedError,
    RateOutOfRangeError,
    UnknownModeError,
    UnknownTierError,
    UnmetNeedError,
    shown,
)
from service.rate_table import RateRow, compute_ms
from service.settings import Settings

NeedName = Literal["max_latency_ms", "min_accuracy"]
NEEDS: tuple[NeedName, ...] = get_args(NeedName)
ChosenBy = Literal["rate", "tier", "default", "max_latency_ms", "min_accuracy"]


@dataclass(frozen=True)
class Need:
    """Instead of a rate or tier: a latency budget (ms) or an accuracy floor (percent)."""

    name: NeedName
    value: float


@dataclass(frozen=True)
class Ask:
    """What a request asked, its fields of the right types but not yet checked against the
    model. `degradable`: the client lets the server prune more under load."""

    rate: float | None = None
    tier: str | None = None
    mode: str | None = None
    need: Need | None = None
    degradable: bool = False


@dataclass(frozen=True)
class Choice:
    """What serves a request: the rate as asked, the resolved rate, mode and tier, and how."""

    rate_asked: float | None
    rate: float
    mode: Mode
    tier: str | None
    degradable: bool = False
    degraded_from: float | None = None
    chosen_by: ChosenBy = "rate"

    @property
    def key(self) -> RateKey:
        return RateKey.of(self.rate, self.mode)


@dataclass(frozen=True)
class RatePolicy:
    """The model's rate range and the settings' tiers; a tier outside the range is refused
    (ValueError) when the policy is made."""

    rate_range: tuple[float, float]
    tiers: Mapping[str, float]
    default_tier: str
    tier_mode: Mode
    degrade_tier: str
    degrade_in_flight: int

    def __post_init__(self) -> None:
        low, high = self.rate_range
        for tier, rate in self.tiers.items():
            if not low <= rate <= high:
                raise ValueError(
                    f"tier {tier!r} rate {rate} is outside the model's range [{low}, {high}]"
                )

    @classmethod
    def of(cls, settings: Settings, rate_range: tuple[float, float]) -> RatePolicy:
        """The settings' tiers for a model of `rate_range`. Tiers the operator set (TIERS) must
        lie in the range; the default tiers are clamped into it, so that any model (a dense
        one serves rate 0 only) is served with nothing configured."""
        tiers = dict(settings.tiers)
        if "tiers" not in settings.model_fields_set:
            low, high = rate_range
            tiers = {tier: min(max(rate, low), high) for tier, rate in tiers.items()}
        return cls(
            rate_range,
            tiers,
            settings.default_tier,
            settings.tier_mode,
            settings.degrade_tier,
            settings.degrade_in_flight,
        )


def resolve(ask: Ask, policy: RatePolicy, rows: Sequence[RateRow], batch: int = 1) -> Choice:
    """The network for `ask`: its rate (checked against the range), or its tier (the default
    tier when neither is given), or for a need the rate of `rows` that meets it at `batch`."""
    if sum(v is not None for v in (ask.rate, ask.tier, ask.need)) > 1:
        raise ConflictingChoicesError("give one of rate, tier, max_latency_ms or min_accuracy")
    mode = _known_mode(ask.mode)
    if ask.need is not None:
        if mode not in (None, "prior"):
            raise ModeConflictsWithNeedError(
                f"{ask.need.name} chooses among prior-mode rates: drop mode {mode!r}"
            )
        chosen = rate_for(ask.need, rows, batch)
        return Choice(None, chosen, "prior", None, ask.degradable, chosen_by=ask.need.name)
    if ask.rate is None:
        tier = policy.default_tier if ask.tier is None else ask.tier
        if tier not in policy.tiers:
            raise UnknownTierError(
                f"unknown tier {shown(tier)}; known: {', '.join(sorted(policy.tiers))}"
            )
        return Choice(
            None,
            policy.tiers[tier],
            mode or policy.tier_mode,
            tier,
            ask.degradable,
            chosen_by="default" if ask.tier is None else "tier",
        )
    low, high = policy.rate_range
    if not math.isfinite(ask.rate) or not low <= ask.rate <= high:
        raise RateOutOfRangeError(f"rate {ask.rate} is outside the model's range [{low}, {high}]")
    return Choice(ask.rate, ask.rate, mode or "prior", None, ask.degradable)


def _known_mode(asked: str | None) -> Mode | None:
    if asked is None:
        return None
    for mode in MODES:
        if asked == mode:
            return mode
    raise UnknownModeError(f"unknown mode {shown(asked)}; known: {', '.join(MODES)}")


def rate_for(need: Need, rows: Sequence[RateRow], batch: int) -> float:
    """max_latency_ms: the least-pruned rate whose start-up compute time at `batch` fits the
    budget; min_accuracy: the most-pruned rate whose evaluated accuracy meets the floor. Both
    among the prior-mode rows (a need is served in prior mode)."""
    rows = [r for r in rows if r.mode == "prior"]
    if need.name == "min_accuracy":
        fits = [r.rate for r in rows if r.accuracy is not None and r.accuracy >= need.value]
        if not fits:
            best = max((r.accuracy or 0.0) for r in rows) if rows else 0.0
            raise UnmetNeedError(
                f"no rate reaches min_accuracy {need.value}% (the best: {best:.1f}%)"
            )
        return max(fits)
    timed = [(r.rate, compute_ms(r.latency_ms, batch)) for r in rows]
    times = [(rate, ms) for rate, ms in timed if ms is not None]
    fits = [rate for rate, ms in times if ms <= need.value]
    if not fits:
        fastest = min((ms for _, ms in times), default=float("nan"))
        raise UnmetNeedError(
            f"no rate meets max_latency_ms {need.value} for {batch} sequence(s) "
            f"(the fastest measured: {fastest:.3f} ms)"
        )
    return min(fits)


def degrade(choice: Choice, policy: RatePolicy, in_flight: int) -> Choice:
    """Under load (more than `degrade_in_flight` requests in flight) a degradable choice is
    served by the degrade tier, when that tier prunes more than the choice."""
    target = policy.tiers[policy.degrade_tier]
    if not choice.degradable or in_flight <= policy.degrade_in_flight or target <= choice.rate:
        return choice
    return replace(
        choice,
        rate=target,
        mode=policy.tier_mode,
        tier=policy.degrade_tier,
        degraded_from=choice.rate,
    )

"""The rate policy as plain functions: no model, no app; rates, tiers, needs and degradation."""

from __future__ import annotations

import math
import re

import pytest

from mrmp.rates import RateKey
from service.errors import (
    ConflictingChoicesError,
    ModeConflictsWithNeedError,
    RateOutOfRangeError,
    UnknownModeError,
    UnknownTierError,
    UnmetNeedError,
)
from service.policy import Ask, Choice, Need, RatePolicy, degrade, rate_for, resolve
from service.rate_table import RateRow, compute_ms

TIERS = {"accurate": 0.5, "balanced": 0.9, "fast": 0.98}
POLICY = RatePolicy((0.0, 0.99), TIERS, "balanced", "prior", "fast", degrade_in_flight=8)


def row(rate: float, accuracy: float | None, batch1: float | None, batch32: float = 0.0) -> RateRow:
    latency = (
        None if batch1 is None else {"compute_batch1_p50": batch1, "compute_batch32_p50": batch32}
    )
    return RateRow(rate, None, accuracy, rate, 100, 1000, latency)


ROWS = [
    row(0.5, 95.0, 3.0, 30.0),
    row(0.8, 93.0, 2.0, 20.0),
    row(0.9, 90.0, 1.0, 10.0),
    row(0.98, 80.0, 0.5, 40.0),
    row(0.95, None, None),  # neither evaluated nor timed: never chosen for a need
]


def test_a_rate_is_served_as_asked_in_prior_mode_unless_told():
    choice = resolve(Ask(rate=0.93), POLICY, ROWS)
    assert choice == Choice(0.93, 0.93, "prior", None, chosen_by="rate")
    assert choice.key == RateKey(930, "prior")
    assert resolve(Ask(rate=0.93, mode="exact"), POLICY, ROWS).mode == "exact"
    assert resolve(Ask(rate=0, degradable=True), POLICY, ROWS).degradable


def test_tiers_and_the_default_tier_in_the_tier_mode():
    default = resolve(Ask(), POLICY, ROWS)
    assert (default.rate, default.tier, default.chosen_by) == (0.9, "balanced", "default")
    fast = resolve(Ask(tier="fast"), POLICY, ROWS)
    assert (fast.rate, fast.tier, fast.chosen_by, fast.rate_asked) == (0.98, "fast", "tier", None)
    exact_tiers = RatePolicy((0.0, 0.99), TIERS, "balanced", "exact", "fast", 8)
    assert resolve(Ask(tier="fast"), exact_tiers, ROWS).mode == "exact"
    assert resolve(Ask(rate=0.98), exact_tiers, ROWS).mode == "prior"


@pytest.mark.parametrize(
    ("ask", "error", "words"),
    [
        (Ask(rate=0.5, tier="fast"), ConflictingChoicesError, "give one of"),
        (Ask(rate=0.5, need=Need("min_accuracy", 50)), ConflictingChoicesError, "give one of"),
        (Ask(mode="magic"), UnknownModeError, 'unknown mode "magic"'),
        (Ask(need=Need("min_accuracy", 0), mode="exact"), ModeConflictsWithNeedError, "prior"),
        (Ask(tier="turbo"), UnknownTierError, "known: accurate, balanced, fast"),
        (Ask(rate=1.5), RateOutOfRangeError, "outside the model's range [0.0, 0.99]"),
        (Ask(rate=-0.1), RateOutOfRangeError, "outside"),
        (Ask(rate=math.nan), RateOutOfRangeError, "outside"),
        (Ask(need=Need("min_accuracy", 99)), UnmetNeedError, "the best: 95.0%"),
        (Ask(need=Need("max_latency_ms", 0.1)), UnmetNeedError, "fastest measured: 0.500 ms"),
    ],
)
def test_each_refusal_is_its_own_error(ask, error, words):
    with pytest.raises(error, match=re.escape(words)):
        resolve(ask, POLICY, ROWS)


def test_min_accuracy_is_the_most_pruned_rate_that_meets_it():
    assert rate_for(Need("min_accuracy", 90), ROWS, 1) == 0.9
    assert rate_for(Need("min_accuracy", 0), ROWS, 1) == 0.98
    choice = resolve(Ask(need=Need("min_accuracy", 93)), POLICY, ROWS)
    assert (choice.rate, choice.mode, choice.chosen_by, choice.tier) == (
        0.8,
        "prior",
        "min_accuracy",
        None,
    )


def test_max_latency_is_the_least_pruned_rate_that_fits_at_the_batch():
    assert rate_for(Need("max_latency_ms", 2.0), ROWS, 1) == 0.8
    assert rate_for(Need("max_latency_ms", 100), ROWS, 1) == 0.5
    # At 32 sequences 0.98 is the slowest (40 ms): 0.9 is the only one within 15 ms.
    assert rate_for(Need("max_latency_ms", 15), ROWS, 32) == 0.9
    with pytest.raises(UnmetNeedError, match="for 32 sequence"):
        rate_for(Need("max_latency_ms", 5), ROWS, 32)


def test_compute_time_interpolates_between_batch_1_and_32():
    latency = {"compute_batch1_p50": 1.0, "compute_batch32_p50": 32.0}
    assert [compute_ms(latency, b) for b in (1, 16, 32)] == [1.0, 16.0, 32.0]
    assert compute_ms(None, 4) is None and compute_ms({}, 4) is None


def test_degrade_only_under_load_only_when_allowed_and_only_upwards():
    asked = resolve(Ask(rate=0.6, degradable=True), POLICY, ROWS)
    assert degrade(asked, POLICY, in_flight=8) == asked  # at the threshold: not under load
    degraded = degrade(asked, POLICY, in_flight=9)
    assert (degraded.rate, degraded.tier, degraded.degraded_from) == (0.98, "fast", 0.6)
    assert degraded.rate_asked == 0.6 and degraded.key == RateKey(980, "prior")
    strict = resolve(Ask(rate=0.6), POLICY, ROWS)
    assert degrade(strict, POLICY, in_flight=100) == strict
    high = resolve(Ask(rate=0.99, degradable=True), POLICY, ROWS)
    assert degrade(high, POLICY, in_flight=100) == high


def test_a_tier_outside_the_rate_range_is_refused():
    with pytest.raises(ValueError, match=r"tier 'x' rate 0\.995 is outside"):
        RatePolicy((0.0, 0.99), {"x": 0.995}, "x", "prior", "x", 8)


def test_the_default_tiers_are_clamped_into_the_models_range_set_ones_are_not():
    from service.settings import Settings

    dense = RatePolicy.of(Settings(), (0.0, 0.0))  # a dense model serves rate 0 only
    assert dense.tiers == {"accurate": 0.0, "balanced": 0.0, "fast": 0.0}
    assert RatePolicy.of(Settings(), (0.0, 0.95)).tiers == {**TIERS, "fast": 0.95}
    assert RatePolicy.of(Settings(), (0.0, 0.99)).tiers == TIERS
    with pytest.raises(ValueError, match=r"tier 'accurate' rate 0\.5 is outside"):
        RatePolicy.of(Settings(tiers=TIERS), (0.0, 0.0))

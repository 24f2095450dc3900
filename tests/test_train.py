import math

import pytest
import torch

from lab.experiment import ModelSpec, build_model, train_config
from training.evaluate import accuracy, evaluate_rates
from training.train import TrainConfig, jitter_bounds, step_gates, train


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="lottery")


def test_jitter_bounds_tile_the_range():
    bounds = jitter_bounds((0.0, 0.5, 0.9), 0.99)
    assert bounds == [(0.0, 0.25), (0.25, 0.7), (0.7, 0.99)]


@pytest.mark.parametrize("top", [False, True])
def test_sandwich_rule_trains_the_top_rate_every_step(small_model, top):
    cfg = TrainConfig(rates=(0.0, 0.5, 0.9, 0.98), rates_per_step=2, always_top_rate=top)
    low = jitter_bounds(cfg.rates, cfg.max_rate)[-1][0]
    gen = torch.Generator().manual_seed(0)
    steps = [step_gates(small_model, cfg, 0.5, gen) for _ in range(200)]
    assert all(len(g) == 2 for g in steps)
    with_top = sum(any(small_model.prior.threshold(low) <= g.a for g in gs) for gs in steps)
    assert (with_top == 200) if top else (60 < with_top < 140)  # else about half the steps


def test_sandwich_rule_needs_two_rates_per_step(small_model):
    cfg = TrainConfig(rates=(0.0, 0.5, 0.9, 0.98), rates_per_step=1, always_top_rate=True)
    gen = torch.Generator().manual_seed(0)
    drawn = {round(step_gates(small_model, cfg, 0.5, gen)[0].a, 3) for _ in range(100)}
    assert len(drawn) > 1  # one rate per step: drawn at random, not always the top one


def test_inplace_distillation_trains_the_lowest_and_the_top_rate_every_step(small_model):
    cfg = TrainConfig(rates=(0.0, 0.25, 0.5, 0.9, 0.98), rates_per_step=3, inplace_distill=True)
    bounds = jitter_bounds(cfg.rates, cfg.max_rate)
    threshold = small_model.prior.threshold
    gen = torch.Generator().manual_seed(0)
    middles = set()
    for _ in range(100):
        first, middle, last = step_gates(small_model, cfg, 0.5, gen)
        assert threshold(bounds[0][0]) <= first.a <= threshold(bounds[0][1])  # the teacher
        assert last.a >= threshold(bounds[-1][0])
        middles.add(next(i for i, (lo, hi) in enumerate(bounds) if middle.a <= threshold(hi)))
    assert middles == {1, 2, 3}  # the others drawn among the rest
    assert "inplace_distill" in TrainConfig(inplace_distill=True).to_dict()
    assert "inplace_distill" not in TrainConfig().to_dict()  # off: recorded as before


def test_inplace_distillation_learns_synthetic_motions(synthetic):
    rates = (0.0, 0.5)  # every rate each step: the lowest is the teacher
    model, history, (xte, yte) = _fit(
        synthetic, "mrmp", 30, rates=rates, rates_per_step=None, inplace_distill=True
    )
    assert history[-1]["ce"] < 0.7 * history[0]["ce"]
    accs = evaluate_rates(model, xte, yte, rates, "prior")
    assert min(a["accuracy"] for a in accs.values()) >= 60.0  # chance: 12.5


def _fit(synthetic, method, epochs, **kw):
    xtr, ytr, xte, yte = synthetic.split(0)
    model = build_model(synthetic, ModelSpec(prior="gaussian", arch={"hidden": 64}))
    cfg = train_config(synthetic, method=method, epochs=epochs, **kw)
    history = train(model, xtr, ytr, cfg, show_progress=False)
    return model, history, (xte, yte)


def test_dense_training_learns_synthetic_motions(synthetic):
    model, history, (x, y) = _fit(synthetic, "dense", 30)
    assert history[-1]["ce"] < history[0]["ce"]
    assert accuracy(model, x, y) > 90


def test_mrmp_keeps_accuracy_and_prior_alignment(synthetic):
    model, history, (x, y) = _fit(
        synthetic, "mrmp", 40, rates=(0.0, 0.5, 0.9), rates_per_step=None, kl_weight=1.0
    )
    assert history[-1]["kl"] < 0.05
    table = evaluate_rates(model, x, y, [0.5, 0.9], "prior")
    assert table["0.50"]["accuracy"] > 80
    for key, row in table.items():
        assert row["observed_rate"] == pytest.approx(float(key), abs=0.02)


def test_cosine_schedule_decays_the_learning_rate_to_zero(synthetic):
    xtr, ytr, _, _ = synthetic.split(0)
    model = build_model(synthetic, ModelSpec(arch={"hidden": 32}))
    cfg = train_config(
        synthetic, method="dense", epochs=4, lr=3e-3, lr_schedule="cosine", batch_size=64
    )
    history = train(model, xtr, ytr, cfg, show_progress=False)
    per_epoch = -(-len(xtr) // 64)
    assert per_epoch > 1
    for record in history:
        done = record["epoch"] * per_epoch / (4 * per_epoch)
        assert record["lr"] == pytest.approx(3e-3 * 0.5 * (1 + math.cos(math.pi * done)), abs=1e-9)
    assert history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_unknown_lr_schedule_is_refused():
    with pytest.raises(ValueError, match="lr_schedule 'step'"):
        TrainConfig(lr_schedule="step")


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_training_is_deterministic_and_resumes_from_checkpoint(
    synthetic, tmp_path, monkeypatch, schedule
):
    xtr, ytr, _, _ = synthetic.split(0)

    def run(ckpt=None):
        model = build_model(synthetic, ModelSpec(arch={"hidden": 32}))
        cfg = train_config(
            synthetic,
            method="mrmp",
            epochs=4,
            rates=(0.5, 0.9),
            checkpoint_every=2,
            lr_schedule=schedule,
            batch_size=64,
        )
        train(model, xtr, ytr, cfg, checkpoint=ckpt, show_progress=False)
        return model

    straight = run()
    ckpt = tmp_path / "state.ckpt"
    real_save = torch.save

    calls = []

    def die_on_second_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after the epoch-2 checkpoint was committed
        real_save(*args, **kwargs)

    monkeypatch.setattr(torch, "save", die_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        run(ckpt)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed = run(ckpt)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_one_view_trains_exactly_like_plain_descriptors(synthetic):
    xtr, ytr, _, _ = synthetic.split(0)

    def run(x):
        model = build_model(synthetic, ModelSpec(arch={"hidden": 32}))
        cfg = train_config(synthetic, method="mrmp", epochs=2, rates=(0.5, 0.9), batch_size=64)
        train(model, x, ytr, cfg, show_progress=False)
        return model

    for a, b in zip(run(xtr).parameters(), run(xtr[None]).parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_the_observed_rate_term_is_trained_and_recorded(synthetic):
    _, history, _ = _fit(
        synthetic, "mrmp", 3, rates=(0.0, 0.5, 0.9), rates_per_step=None, rate_weight=100.0
    )
    assert all(record["rate_gap"] >= 0 for record in history)
    _, plain, _ = _fit(synthetic, "mrmp", 1, rates=(0.0, 0.5), rates_per_step=None)
    assert "rate_gap" not in plain[-1]
    with pytest.raises(ValueError, match="rate_weight must be >= 0"):
        TrainConfig(rate_weight=-1.0)

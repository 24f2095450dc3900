import pytest
import torch

from mrmp.derive import MagnitudeIndex, derive, derive_masks
from mrmp.gcn import MaskGate

RATES = [0.0, 0.1, 0.5, 0.73, 0.9, 0.98, 0.99]


@pytest.mark.parametrize("rate", RATES)
def test_exact_mode_observes_the_rate_per_layer(small_model, rate):
    _, info = derive_masks(small_model, rate, "exact")
    for name, z in small_model.latents():
        assert info.layer_rates[name] == pytest.approx(round(rate * z.numel()) / z.numel())
    assert info.observed_rate == pytest.approx(rate, abs=1e-3)


@pytest.mark.parametrize("rate", RATES)
def test_prior_mode_observed_rate_counts_zeros(small_model, rate):
    net, info = derive(small_model, rate, "prior")
    params = net.params()
    zeros = sum(int((params[n] == 0).sum()) for n in small_model.prunable)
    total = sum(params[n].numel() for n in small_model.prunable)
    assert info.pruned == zeros and info.prunable == total
    assert info.prior_threshold == pytest.approx(small_model.prior.threshold(rate))
    # Freshly initialized latents are samples of the prior: the observed rate is close to r.
    assert info.observed_rate == pytest.approx(rate, abs=0.02)


@pytest.mark.parametrize("mode", ["prior", "exact"])
def test_masks_are_monotone_in_rate(small_model, mode):
    """A weight pruned at r stays pruned at every r' > r."""
    previous = None
    for r in [i / 100 for i in range(0, 100, 3)]:
        masks, _ = derive_masks(small_model, r, mode)
        if previous is not None:
            for name, m in masks.items():
                assert torch.all(m <= previous[name]), (mode, r, name)
        previous = masks


def test_derived_network_equals_masked_latent_forward(small_model, synthetic):
    x = synthetic.x[:16]
    for r in (0.0, 0.5, 0.95):
        net, _ = derive(small_model, r, "prior")
        masks, _ = derive_masks(small_model, r, "prior")
        with torch.no_grad():
            expected = small_model(x, MaskGate(masks))
        torch.testing.assert_close(net(x), expected)


def test_rate_zero_is_the_dense_network(small_model, synthetic):
    net, info = derive(small_model, 0.0, "prior")
    assert info.pruned == 0
    with torch.no_grad():
        torch.testing.assert_close(net(synthetic.x[:8]), small_model(synthetic.x[:8]))


def test_bad_rate_and_mode(small_model):
    with pytest.raises(ValueError, match="rate"):
        derive(small_model, 1.0)
    with pytest.raises(ValueError, match="rate"):
        derive(small_model, -0.1)
    with pytest.raises(ValueError, match="mode"):
        derive(small_model, 0.5, "fuzzy")


def test_unpruned_layers_are_untouched(small_model):
    masks, info = derive_masks(small_model, 0.9, "prior")
    assert "classifier" not in masks and "classifier" not in small_model.prunable
    assert set(masks) == small_model.prunable
    assert info.kept_params > info.prunable - info.pruned


def _tie_fc(model) -> None:
    """Give 51 of fc's latents one magnitude, so that the exact mode meets ties."""
    with torch.no_grad():
        z = next(z for name, z in model.latents() if name == "fc")
        z.view(-1)[:50] = z.view(-1)[50]


def test_exact_threshold_is_the_kth_smallest_magnitude(small_model):
    _tie_fc(small_model)
    for rate in (0.1, 0.5, 0.93):
        _, info = derive_masks(small_model, rate, "exact")
        for name, z in small_model.latents():
            k = round(rate * z.numel())
            expected = float(torch.kthvalue(z.detach().abs().reshape(-1), k).values)
            assert info.thresholds[name] == expected, (rate, name)


@pytest.mark.parametrize("mode", ["prior", "exact"])
def test_derivation_counts_what_the_masks_cut(small_model, mode):
    """The counts read off the sorted magnitudes agree with the masks, ties included."""
    _tie_fc(small_model)
    index = MagnitudeIndex(small_model)
    for rate in (0.0, 0.25, 0.5, 0.777, 0.93, 0.98, 0.99):
        masks, info = derive_masks(small_model, rate, mode)
        for name, m in masks.items():
            cut = int((m == 0).sum())
            assert info.layer_rates[name] == cut / m.numel(), (rate, name)
            z = dict(small_model.latents())[name]
            assert torch.equal(m, (z.detach().abs() > info.thresholds[name]).to(m.dtype))
        assert index.derivation(rate, mode) == info, rate


@pytest.mark.parametrize("mode", ["prior", "exact"])
def test_one_index_derives_every_rate_as_derive_does(small_model, synthetic, mode):
    _tie_fc(small_model)
    index = MagnitudeIndex(small_model)
    x = synthetic.x[:16]
    for rate in (0.0, 0.25, 0.5, 0.777, 0.93, 0.98, 0.99):
        net, info = derive(small_model, rate, mode)
        fast, fast_info = index.derive(rate, mode)
        assert torch.equal(net(x), fast(x)), rate
        assert info == fast_info, rate
    with pytest.raises(ValueError):
        index.derive(1.0, mode)

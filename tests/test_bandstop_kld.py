import pytest
import torch

from mrmp.bandstop import annealed_crispness, bandstop
from mrmp.priors import PRIORS, get_prior
from training.kld import SoftCdf, SoftHistogramKL, SoftRateGap, quantile_grid


def test_bandstop_shape():
    z = torch.tensor([-3.0, -1.01, -0.5, 0.0, 0.5, 0.99, 3.0])
    psi = bandstop(z, a=1.0, sigma=200.0)
    torch.testing.assert_close(
        psi, torch.tensor([1.0, 0.8808, 0.0, 0.0, 0.0, 0.1192, 1.0]), atol=1e-3, rtol=0
    )
    assert torch.all((psi >= 0) & (psi <= 1 + 1e-6))
    # symmetric in z
    torch.testing.assert_close(bandstop(z, 1.0, 5.0), bandstop(-z, 1.0, 5.0))


def test_bandstop_converges_to_hard_mask_and_is_one_at_rate_zero():
    z = torch.randn(10_000)
    z = z[(z.abs() - 0.7).abs() > 0.05]  # away from the cut
    torch.testing.assert_close(bandstop(z, 0.7, 1e4), (z.abs() > 0.7).float())
    assert torch.equal(bandstop(z, 0.0, 10.0), torch.ones_like(z))


def test_bandstop_is_differentiable():
    z = torch.tensor([0.9, 1.1], requires_grad=True)
    bandstop(z, 1.0, 10.0).sum().backward()
    assert torch.all(z.grad.abs() > 0)


def test_annealing_geometric_in_units_of_a():
    a = 0.5
    assert annealed_crispness(a, 0.0) == pytest.approx(1 / a)
    assert annealed_crispness(a, 1.0) == pytest.approx(100 / a)
    assert annealed_crispness(a, 0.5) == pytest.approx(10 / a)
    assert annealed_crispness(a, 0.25) < annealed_crispness(a, 0.75)


@pytest.mark.parametrize("name", list(PRIORS))
def test_kl_small_on_prior_samples_large_off_prior(name):
    prior = get_prior(name)
    kl = SoftHistogramKL(prior, sample=None)
    z = prior.sample((50_000,), generator=torch.Generator().manual_seed(1))
    on = float(kl.divergence(z))
    off = float(kl.divergence(z * 0.3))
    assert 0 <= on < 0.02
    assert off > 10 * on


def test_kl_histogram_is_a_distribution_and_has_gradients():
    kl = SoftHistogramKL(get_prior("gaussian"), bins=20)
    z = (torch.randn(1000) * 2).requires_grad_()
    p = kl.histogram(z)
    assert p.shape == (22,)
    assert float(p.detach().sum()) == pytest.approx(1.0, abs=1e-6)
    kl([z, z * 0.5]).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_kl_gradient_pulls_towards_prior():
    kl = SoftHistogramKL(get_prior("gaussian"), sample=None)
    z = (torch.randn(2000) * 0.5).requires_grad_()
    opt = torch.optim.Adam([z], lr=0.04)
    before = float(kl.divergence(z).detach())
    for _ in range(100):
        opt.zero_grad()
        kl.divergence(z).backward()
        opt.step()
    assert float(kl.divergence(z).detach()) < before / 5
    assert 0.8 < float(z.detach().std()) < 1.2


def test_soft_cdf_backward_equals_autograd_through_erf():
    # Weights near the edges and far beyond them (where the kernel underflows), in float64.
    gen = torch.Generator().manual_seed(0)
    z = torch.cat(
        [
            torch.randn(500, generator=gen, dtype=torch.float64) * 3,
            torch.tensor([-40.0, 25.0], dtype=torch.float64),
        ]
    )
    edges = torch.linspace(-4.0, 4.0, 49, dtype=torch.float64)
    scale = (8.0 / 48) * 2**0.5
    g = torch.randn(49, generator=gen, dtype=torch.float64)
    z1 = z.clone().requires_grad_()
    (SoftCdf.apply(z1, edges, scale) @ g).backward()
    z2 = z.clone().requires_grad_()
    reference = (0.5 * (1.0 + torch.erf((edges[None, :] - z2[:, None]) / scale))).mean(dim=0)
    (reference @ g).backward()
    torch.testing.assert_close(SoftCdf.apply(z, edges, scale), reference.detach(), rtol=0, atol=0)
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-12, atol=1e-30)
    assert torch.all(z1.grad[-2:].abs() < 1e-30)  # beyond every edge: no pull


@pytest.mark.parametrize("name", list(PRIORS))
def test_rate_gap_is_zero_on_the_prior_and_measures_the_hard_rate_off_it(name):
    prior = get_prior(name)
    rates = (0.0, 0.5, 0.9)
    kernel = SoftHistogramKL(prior).h
    gap = SoftRateGap(prior, rates, kernel=kernel, sample=None)
    aligned = quantile_grid(prior, 40_000)
    assert float(gap.gap(aligned)) < 1e-10
    # Weights stretched by 1.2: the hard observed rate at a(r) is the prior's rate at a / 1.2;
    # the soft one follows it to within the kernel's smoothing.
    stretched = aligned * 1.2
    hard = torch.tensor(
        [float((stretched.abs() <= prior.threshold(r)).float().mean()) for r in rates[1:]]
    )
    soft = gap.soft_rates(stretched)
    assert torch.all(hard < torch.tensor(rates[1:]) - 0.03)  # under-pruned, as a check
    torch.testing.assert_close(soft - gap.target, hard - torch.tensor(rates[1:]), atol=0.01, rtol=0)
    assert float(gap.gap(stretched)) == pytest.approx(float((soft - gap.target).square().mean()))


def test_rate_gap_gradient_closes_an_under_pruning():
    prior = get_prior("laplace")
    rates = (0.5, 0.7, 0.9)
    gap = SoftRateGap(prior, rates, kernel=SoftHistogramKL(prior).h, sample=None)
    z = (quantile_grid(prior, 5_000) * 1.2).requires_grad_()

    def worst_error() -> float:
        return max(
            abs(float((z.detach().abs() <= prior.threshold(r)).float().mean()) - r) for r in rates
        )

    before = worst_error()
    opt = torch.optim.Adam([z], lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        gap([z]).backward()
        opt.step()
    # The soft rates reach the prior's; the hard ones follow, up to the weights the kernel
    # cannot tell apart near each threshold (alone, the term piles them there).
    assert float(gap([z]).detach()) < 1e-8
    assert before > 0.05
    assert worst_error() < before / 3


def test_rate_gap_needs_a_rate_above_zero():
    with pytest.raises(ValueError, match="at least one rate above 0"):
        SoftRateGap(get_prior("gaussian"), (0.0,), kernel=0.1)

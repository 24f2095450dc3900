import numpy as np
import pytest
import torch
from scipy import stats

from mrmp.priors import PRIORS, get_prior

SCIPY = {
    "uniform": stats.uniform(loc=-np.sqrt(3), scale=2 * np.sqrt(3)),
    "gaussian": stats.norm(),
    "laplace": stats.laplace(scale=1 / np.sqrt(2)),
}
RATES = np.round(np.arange(0.01, 0.991, 0.01), 2)


@pytest.mark.parametrize("name", list(PRIORS))
def test_threshold_equals_scipy_quantile(name):
    prior = get_prior(name)
    for r in RATES:
        expected = SCIPY[name].ppf((1 + r) / 2)
        assert abs(prior.threshold(float(r)) - expected) < 1e-6, (name, r)


@pytest.mark.parametrize("name", list(PRIORS))
def test_unit_variance_and_cdf(name):
    assert SCIPY[name].var() == pytest.approx(1.0)
    x = np.linspace(-4, 4, 81)
    ours = get_prior(name).cdf(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, SCIPY[name].cdf(x), atol=1e-9)


@pytest.mark.parametrize("name", list(PRIORS))
def test_rate_of_threshold_inverts_threshold(name):
    prior = get_prior(name)
    for r in (0.1, 0.5, 0.9, 0.98):
        assert prior.rate_of_threshold(prior.threshold(r)) == pytest.approx(r, abs=1e-9)


def test_check_values_from_method():
    # unit-scale priors U[-1,1], N(0,1), Laplace(beta=1), per METHOD section 3
    checks = {0.5: (0.500, 0.674, 0.693), 0.9: (0.900, 1.645, 2.303), 0.98: (0.980, 2.326, 3.912)}
    for r, (u, g, lap) in checks.items():
        assert get_prior("uniform").threshold(r) / np.sqrt(3) == pytest.approx(u, abs=1e-3)
        assert get_prior("gaussian").threshold(r) == pytest.approx(g, abs=1e-3)
        assert get_prior("laplace").threshold(r) * np.sqrt(2) == pytest.approx(lap, abs=1e-3)


@pytest.mark.parametrize("name", list(PRIORS))
def test_bin_masses_sum_to_one_and_match_scipy(name):
    prior = get_prior(name)
    edges = torch.linspace(-2, 2, 9, dtype=torch.float64)
    masses = prior.bin_masses(edges).numpy()
    assert masses.shape == (10,)
    assert masses.sum() == pytest.approx(1.0)
    cdf = SCIPY[name].cdf(edges.numpy())
    np.testing.assert_allclose(masses[1:-1], np.diff(cdf), atol=1e-9)
    assert masses[0] == pytest.approx(cdf[0])


@pytest.mark.parametrize("name", list(PRIORS))
def test_samples_follow_the_prior(name):
    z = get_prior(name).sample((200_000,), generator=torch.Generator().manual_seed(0))
    assert stats.kstest(z.double().numpy(), SCIPY[name].cdf).statistic < 0.01


def test_rate_bounds_and_unknown_prior():
    with pytest.raises(ValueError, match="rate"):
        get_prior("gaussian").threshold(1.0)
    with pytest.raises(ValueError, match="unknown prior"):
        get_prior("cauchy")
    assert get_prior("laplace").threshold(0.0) == 0.0

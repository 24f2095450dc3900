"""training/alignment.py: per-layer alignment of latent weights with the prior, checked on
weights set to the prior's own quantiles (exact alignment) and to a scaled copy of them (an
observed rate known in closed form)."""

import pytest
import torch

from mrmp.gcn import GCNConfig, LatentGCN
from mrmp.priors import get_prior
from training.alignment import ALIGNMENT_RATES, prior_alignment
from training.kld import quantile_grid


def _model_following(prior_name: str, stretch: float) -> LatentGCN:
    """A model whose every prunable latent holds the prior's quantiles times `stretch`."""
    prior = get_prior(prior_name)
    model = LatentGCN(
        GCNConfig(num_joints=30, in_features=12, num_classes=8), torch.zeros(30, 30), prior
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, z in model.latents(prunable_only=True):
            n = z.numel()
            values = quantile_grid(prior, n) * stretch
            z.copy_(values[torch.randperm(n, generator=gen)].reshape(z.shape))
    return model


@pytest.mark.parametrize("prior", ["uniform", "gaussian", "laplace"])
def test_weights_that_are_the_prior_are_aligned(prior):
    rows = prior_alignment(_model_following(prior, 1.0))
    assert rows[-1].name == "all"
    layers = len(rows) - 1
    for row in rows:
        # Quantiles at (i + 0.5) / n put each layer's cut within a weight or two of r * n
        # (float32 rounding of the values next to the threshold), "all" within that per layer.
        allowed = 2 * (layers if row.name == "all" else 1)
        assert abs(row.worst_error) <= 100.0 * allowed / row.weights
        if row.kl is not None:
            assert row.kl < 1e-3


def test_stretched_laplace_weights_under_prune_by_the_closed_form():
    # |Z| = c |Q| with Q laplace of scale b: P(|Z| <= a(r)) = 1 - (1 - r)^(1 / c).
    c = 1.1
    rows = prior_alignment(_model_following("laplace", c))
    expected = {r: 100.0 * ((1 - (1 - r) ** (1 / c)) - r) for r in ALIGNMENT_RATES}
    worst = min(expected, key=expected.get)
    total = rows[-1]
    assert total.worst_rate == pytest.approx(worst)
    assert total.worst_error == pytest.approx(expected[worst], abs=0.01)
    assert all(row.kl is None or row.kl > 1e-3 for row in rows)


def test_no_rates_is_refused():
    with pytest.raises(ValueError, match="no rates"):
        prior_alignment(_model_following("gaussian", 1.0), rates=())

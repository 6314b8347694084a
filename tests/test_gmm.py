"""The Gaussian-mixture baseline: exact log-likelihood, EM that climbs, reproducible sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from reference_models.gmm import GMM


def two_blobs(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    left = torch.randn(n, 2, generator=generator) * torch.tensor([0.3, 0.6]) + torch.tensor([-2.0, 0.0])
    right = torch.randn(n, 2, generator=generator) * 0.4 + torch.tensor([2.0, 1.0])
    return torch.cat([left, right])


def test_log_prob_is_the_mixture_density() -> None:
    gmm = GMM(components=2).fit(two_blobs(500, 0))
    points = two_blobs(20, 1)
    mix = gmm.mixture
    density = sum(w * multivariate_normal(m, c).pdf(points.numpy())
                  for w, m, c in zip(mix.weights_, mix.means_, mix.covariances_))
    assert np.allclose(gmm.log_prob(points).numpy(), np.log(density), atol=1e-4)


def test_em_steps_never_lower_the_likelihood() -> None:
    data = two_blobs(400, 0)
    gmm = GMM(components=4, seed=0)
    scores = [gmm.em_step(data) for _ in range(15)]
    assert all(later >= earlier - 1e-9 for earlier, later in zip(scores, scores[1:]))
    assert gmm.log_prob(data).mean().item() == pytest.approx(scores[-1], abs=1e-5)


def test_samples_are_reproducible_and_follow_the_fit() -> None:
    gmm = GMM(components=2).fit(two_blobs(1000, 0))
    a = gmm.sample(20000, torch.Generator().manual_seed(5))
    b = gmm.sample(20000, torch.Generator().manual_seed(5))
    assert a.shape == (20000, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    mix = gmm.mixture
    mean = (mix.weights_[:, None] * mix.means_).sum(0)
    assert np.allclose(a.mean(0).numpy(), mean, atol=0.03)
    left = a[a[:, 0] < 0]
    assert left[:, 0].std().item() == pytest.approx(0.3, abs=0.03)
    assert left[:, 1].std().item() == pytest.approx(0.6, abs=0.05)


def test_unfitted_and_bad_input_fail_clearly() -> None:
    with pytest.raises(ValueError, match="not fitted yet"):
        GMM().sample(10)
    with pytest.raises(ValueError, match=r"expected points as a non-empty \(N, D\) tensor"):
        GMM().fit(torch.zeros(5))

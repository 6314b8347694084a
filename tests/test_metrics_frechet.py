"""Fréchet distance: closed forms on hand-computed Gaussians, the matrix-square-root definition on random
covariances, singular covariances that stay real, and feature statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg

from gendiag.metrics import feature_statistics, frechet_distance, frechet_distance_between


def test_one_dimensional_closed_form() -> None:
    # (0 - 3)² + 1 + 4 - 2 sqrt(1 * 4) = 9 + 5 - 4
    assert frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0, rel=1e-12)


def test_diagonal_closed_form() -> None:
    # |(1, 1)|² + (1 + 4) + (9 + 1) - 2 (sqrt(9) + sqrt(4)) = 2 + 5 + 10 - 10
    value = frechet_distance([0, 0], np.diag([1.0, 4.0]), [1, 1], np.diag([9.0, 1.0]))
    assert value == pytest.approx(7.0, rel=1e-12)


def test_same_gaussian_is_zero_and_scaling_is_exact() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T + np.eye(6)
    assert frechet_distance(np.ones(6), sigma, np.ones(6), sigma) == pytest.approx(0.0, abs=1e-9)
    # N(0, S) against N(0, 4S): tr(S) + 4 tr(S) - 2 tr(2 S) = tr(S)
    assert frechet_distance(np.zeros(6), sigma, np.zeros(6), 4 * sigma) == pytest.approx(np.trace(sigma), rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(dim=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_matches_the_matrix_square_root_definition(dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(dim), b @ b.T + 0.1 * np.eye(dim)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    root = linalg.sqrtm(sigma1 @ sigma2).real
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8, abs=1e-9)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(
        frechet_distance(mu2, sigma2, mu1, sigma1), rel=1e-9, abs=1e-9)


def test_singular_covariances_give_a_finite_real_distance() -> None:
    # Rank-1 covariances along different axes: the product S1 S2 is 0, so tr sqrt = 0 and d² = 1 + 1.
    sigma1, sigma2 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])
    assert frechet_distance([0, 0], sigma1, [0, 0], sigma2) == pytest.approx(2.0, abs=1e-12)
    # Fewer samples than dimensions: rank-deficient estimates, still finite and >= 0.
    rng = np.random.default_rng(1)
    value = frechet_distance_between(rng.normal(size=(5, 20)), rng.normal(size=(5, 20)))
    assert np.isfinite(value) and value >= 0


def test_feature_statistics_are_mean_and_unbiased_covariance() -> None:
    features = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    mu, sigma = feature_statistics(features)
    assert np.allclose(mu, [2.0, 2.0])
    # deviations (-2, -1), (0, -1), (2, 2); divided by N - 1 = 2
    assert np.allclose(sigma, [[4.0, 3.0], [3.0, 3.0]])


def test_features_from_the_same_distribution_are_close() -> None:
    rng = np.random.default_rng(2)
    same = frechet_distance_between(rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4)))
    shifted = frechet_distance_between(rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4)) + 1)
    assert same < 0.02 and shifted == pytest.approx(4.0, rel=0.05)


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="one D"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="sigma2 is not symmetric"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="at least 2 samples"):
        feature_statistics(np.zeros((1, 3)))

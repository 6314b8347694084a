"""Fréchet distance between Gaussians fitted to two feature sets (the FID formula, in any feature space).

d² = |mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

tr((S1 S2)^(1/2)) is computed without a non-symmetric matrix square root (which can turn complex from rounding):
S1 S2 is similar to the symmetric positive semi-definite M = S1^(1/2) S2 S1^(1/2), so the trace is the sum of the
square roots of M's eigenvalues (real by symmetry; tiny negative ones from rounding are clipped to 0)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gendiag.metrics.neighbours import as_points


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64, as pytorch-fid computes them."""
    points = as_points(features, "features").astype(np.float64)
    if len(points) < 2:
        raise ValueError(f"feature_statistics: need at least 2 samples for a covariance, got {len(points)}")
    return points.mean(axis=0), np.atleast_2d(np.cov(points, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    from scipy import linalg  # scipy loads when a distance is measured, not with gendiag

    values, vectors = linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); covariances must be symmetric (D, D)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"frechet_distance: need means (D,) and covariances (D, D) of one D, got {mu1.shape}, "
                         f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.allclose(sigma, sigma.T, rtol=1e-8, atol=1e-12 * max(1.0, float(np.abs(sigma).max()))):
            raise ValueError(f"frechet_distance: {name} is not symmetric; expected a covariance matrix")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    from scipy import linalg

    eigenvalues = linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = mu1 - mu2
    distance = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
    return max(distance, 0.0)


def frechet_distance_between(features_a: Any, features_b: Any) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (N, D) and (M, D)."""
    mu_a, sigma_a = feature_statistics(features_a)
    mu_b, sigma_b = feature_statistics(features_b)
    return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)

"""Exact Wasserstein-2 distance between two equal-size point sets (optimal assignment, scipy's Hungarian solver)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist


def wasserstein2(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """W2 between the empirical measures of `a` (n, d) and `b` (n, d): sqrt of the mean squared distance under
    the optimal one-to-one matching. Exact for uniform weights and equal sizes; O(n³) time, so n ≲ 5,000."""
    a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(f"wasserstein2: need two non-empty (n, d) sets of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("wasserstein2: the point sets hold NaN or infinite values")
    cost = cdist(a, b, metric="sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))

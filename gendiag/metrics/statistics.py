"""The few classical statistics the rules and figures use: Kendall's tau-b, Spearman's rho, the Kolmogorov-Smirnov
distance to N(0, 1), normal probability-plot positions and chi-squared quantiles.

They are computed here, not through `scipy.stats`, whose import took 0.4-1.1 s on 2 cores: a cost the first live
check and `Monitor.finish` paid in every run for a handful of numbers. Each agrees with `scipy.stats` to rounding
(tests/test_statistics.py compares them on random and tied inputs)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def kendall_tau(x: Any, y: Any) -> float:
    """Kendall's tau-b of two equal-length sequences (ties counted as scipy.stats.kendalltau counts them); NaN
    where either is constant or shorter than 2. Quadratic in the length: meant for tens to a few thousand points."""
    x, y = _pair(x, y, "kendall_tau")
    n = len(x)
    if n < 2:
        return math.nan
    upper = np.triu_indices(n, k=1)
    dx = np.sign(x[:, None] - x[None, :])[upper]
    dy = np.sign(y[:, None] - y[None, :])[upper]
    pairs = len(dx)
    denominator = math.sqrt(float(pairs - np.count_nonzero(dx == 0)) * float(pairs - np.count_nonzero(dy == 0)))
    return float(np.sum(dx * dy)) / denominator if denominator > 0 else math.nan


def spearman_rho(x: Any, y: Any) -> float:
    """Spearman's rank correlation (Pearson's correlation of the average ranks); NaN where either is constant."""
    x, y = _pair(x, y, "spearman_rho")
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(np.dot(rx, rx)) * float(np.dot(ry, ry)))
    return float(np.dot(rx, ry)) / denominator if denominator > 0 else math.nan


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts) - 1
    bounds = np.r_[np.flatnonzero(starts), len(values)]
    ranks = np.empty(len(values))
    ranks[order] = 0.5 * (bounds[group] + bounds[group + 1] + 1)
    return ranks


def ks_distance_to_normal(values: Any) -> float:
    """The two-sided Kolmogorov-Smirnov statistic of the values against N(0, 1): the largest gap between their
    empirical distribution function and the normal one."""
    ordered = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1).sort().values
    n = ordered.numel()
    if n == 0:
        raise ValueError("ks_distance_to_normal: no values; expected at least one")
    cdf = torch.special.ndtr(ordered)
    steps = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum((steps / n - cdf).max(), (cdf - (steps - 1) / n).max()))


def normal_plot_positions(n: int) -> np.ndarray:
    """N(0, 1) quantiles at Filliben's estimates of the uniform order statistics' medians: the theoretical axis of
    a normal probability plot of n sorted values (as scipy.stats.probplot draws it)."""
    if n < 1:
        raise ValueError(f"normal_plot_positions: need n >= 1, got {n}")
    medians = np.empty(n)
    medians[-1] = 0.5 ** (1.0 / n)
    medians[0] = 1.0 - medians[-1]
    medians[1:-1] = (np.arange(2, n) - 0.3175) / (n + 0.365)
    return torch.special.ndtri(torch.from_numpy(medians)).numpy()


def chi2_quantile(probability: float, dof: int) -> float:
    """The `probability` quantile of the chi-squared distribution with `dof` degrees of freedom; NaN for fewer than
    one degree of freedom (a histogram of one part), as scipy.stats.chi2.ppf gives."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"chi2_quantile: need 0 < probability < 1, got {probability}")
    if dof < 1:
        return math.nan
    from scipy.special import gammaincinv  # scipy.special alone: a fifth of scipy.stats' import

    return 2.0 * float(gammaincinv(dof / 2.0, probability))


def _pair(x: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{name}: the two sequences differ in length ({len(x)} and {len(y)}); expected equal")
    return x, y

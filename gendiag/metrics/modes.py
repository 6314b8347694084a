"""Known-mode metrics for data drawn from a mixture with known centers, as PacGAN's evaluation does it
(Lin et al. 2018, after VEEGAN; PacGAN repository, synthetic_data_experiments/.../extensions.py `MetricLogger`).

Each sample is assigned to its nearest mode by distance in units of that mode's standard deviation,
|x - c_k| / std_k. A sample is high-quality when that distance is below 3. A mode is captured when at least
one high-quality sample is assigned to it.

Reverse KL: KL(P_gen || P_true) = sum_k p_k log(p_k / (1/K)), natural log, where p is the histogram of the
HIGH-QUALITY samples over their nearest modes, normalized to sum to 1 (the histogram PacGAN's MetricLogger
builds), and P_true is uniform over the K modes. "Reverse" because the generated distribution is the first
argument. No smoothing is needed: the uniform never vanishes, and empty bins add 0 (0 log 0 = 0). It is 0 for a
perfectly balanced generator and log K when every high-quality sample falls on one mode; it is +inf when no
sample is high-quality (the histogram is then undefined)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gendiag.metrics.neighbours import as_points

HIGH_QUALITY_STDS = 3.0


@dataclass(frozen=True)
class Coverage:
    """Samples counted over K known parts of the data (modes or classes): which parts hold a sample, the largest
    part's share and KL(p || uniform) of the histogram. Known modes and classes are judged on this one summary."""

    counts: np.ndarray  # (K,) samples per part

    @property
    def n_units(self) -> int:
        return len(self.counts)

    @property
    def covered(self) -> np.ndarray:
        return self.counts > 0

    @property
    def n_covered(self) -> int:
        return int(self.covered.sum())

    @property
    def missing(self) -> list[int]:
        return [int(k) for k in np.flatnonzero(~self.covered)]

    @property
    def largest_share(self) -> float:
        return float(self.counts.max() / self.counts.sum())

    @property
    def kl_to_uniform(self) -> float:
        return kl_to_uniform(self.counts)


@dataclass(frozen=True)
class ModeMetrics(Coverage):
    """`Coverage` of the high-quality samples over the modes (PacGAN's names kept as aliases), with each sample's
    assignment."""

    nearest_mode: np.ndarray  # (N,) index of each sample's nearest mode, in std units
    distance_in_std: np.ndarray  # (N,) distance to that mode, in units of its std
    high_quality: np.ndarray  # (N,) bool: distance_in_std < threshold

    n_modes = Coverage.n_units
    captured = Coverage.covered  # a mode is captured when a high-quality sample falls on it
    modes_captured = Coverage.n_covered
    dropped_modes = Coverage.missing
    reverse_kl = Coverage.kl_to_uniform

    @property
    def high_quality_share(self) -> float:
        return float(self.high_quality.mean())


def kl_to_uniform(counts: Any) -> float:
    """KL(p || uniform) with p = counts / counts.sum(), natural log; +inf for an all-zero histogram."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any():
        raise ValueError(f"kl_to_uniform: expected a non-empty 1-D histogram of counts >= 0, got {counts!r}")
    total = counts.sum()
    if total == 0:
        return math.inf
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


def mode_metrics(samples: Any, centers: Any, std: float | Any, threshold: float = HIGH_QUALITY_STDS) -> ModeMetrics:
    """PacGAN's known-mode metrics of `samples` (N, D) against mode `centers` (K, D) with standard deviation
    `std` (one number, or one per mode, shape (K,))."""
    points = as_points(samples, "mode_metrics(samples)").astype(np.float64)
    modes = as_points(centers, "mode_metrics(centers)").astype(np.float64)
    if points.shape[1] != modes.shape[1]:
        raise ValueError(f"mode_metrics: samples have dimension {points.shape[1]} but centers {modes.shape[1]}")
    stds = np.asarray(std, dtype=np.float64)
    stds = np.full(len(modes), float(stds)) if stds.ndim == 0 else stds
    if stds.shape != (len(modes),) or not (np.isfinite(stds).all() and (stds > 0).all()):
        raise ValueError(f"mode_metrics: std must be a positive number or one per mode ({len(modes)},), got {std!r}")
    if not threshold > 0:
        raise ValueError(f"mode_metrics: threshold must be > 0 standard deviations, got {threshold!r}")
    from scipy.spatial.distance import cdist  # scipy loads when modes are counted, not with gendiag

    scaled = cdist(points, modes) / stds[None, :]  # (N, K): K is small, so this is N numbers per mode
    nearest = scaled.argmin(axis=1)
    distance = scaled[np.arange(len(points)), nearest]
    high_quality = distance < threshold
    counts = np.bincount(nearest[high_quality], minlength=len(modes))
    return ModeMetrics(counts=counts, nearest_mode=nearest, distance_in_std=distance, high_quality=high_quality)

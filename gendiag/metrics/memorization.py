"""Memorization: are generated samples closer to the training set than fresh real samples are?

A generator that generalizes produces samples whose distance to the nearest training sample looks like that of
held-out real samples (same distribution, never trained on); one that copies produces samples much closer.

Raw distances mislead where the generator concentrates on dense regions (a GAN collapsed onto mode centers sits
closer to training points than spread-out held-out points, without copying anything). So each distance is also
taken relative to the local spacing of the training set: ratio(x) = d(x, t) / d(t, t'), with t the training
sample nearest to x and t' the training sample nearest to t. A copy has a ratio near 0 wherever it sits; a fresh
sample has a ratio of order 1, whatever the local density. The decision uses the ratios:
- copy share: generated samples whose ratio is below the `copy_quantile` quantile of the held-out ratios
  (near-copies); about `copy_quantile` for a generator that generalizes.
- Mann-Whitney z (the data-copying test of Meehan, Chaudhuri and Dasgupta 2020, on ratios instead of raw
  distances): z = (U - m n / 2) / sqrt(m n (m + n + 1) / 12), U counting pairs where the generated value exceeds
  the held-out one (ties one half); z below -3 means generated samples sit systematically closer.
The median ratio of raw distances (generated / held-out) is reported beside them.

And the birthday-paradox test (Arora and Zhang 2017): among s samples of a distribution uniform on S points, the
expected number of duplicate pairs is C(s, 2) / S, so S is about C(s, 2) / pairs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gendiag.metrics.neighbours import (
    DEFAULT_CHUNK, as_points, close_pairs, kth_neighbour_distances, nearest_distances,
)
from gendiag.metrics.statistics import average_ranks


@dataclass(frozen=True)
class Memorization:
    generated_distance: np.ndarray  # (M,) each generated sample's distance to its nearest training sample
    nearest_train: np.ndarray  # (M,) index of that training sample
    generated_ratio: np.ndarray  # (M,) that distance over the training sample's own nearest-neighbour distance
    heldout_distance: np.ndarray  # (H,) the same for held-out real samples
    heldout_ratio: np.ndarray  # (H,)
    copy_quantile: float
    copy_threshold: float  # the copy_quantile quantile of heldout_ratio

    @property
    def copies(self) -> np.ndarray:
        """(M,) bool: generated samples whose ratio is below the copy threshold."""
        return self.generated_ratio < self.copy_threshold

    @property
    def copy_share(self) -> float:
        return float(self.copies.mean())

    @property
    def median_distance_ratio(self) -> float:
        """Median generated distance over median held-out distance (raw distances)."""
        heldout = float(np.median(self.heldout_distance))
        generated = float(np.median(self.generated_distance))
        return generated / heldout if heldout > 0 else (math.inf if generated > 0 else 1.0)

    @property
    def mann_whitney_z(self) -> float:
        return mann_whitney_z(self.generated_ratio, self.heldout_ratio)


def mann_whitney_z(a: Any, b: Any) -> float:
    """Normal approximation of the Mann-Whitney U statistic of `a` against `b` (ties count one half, no tie
    correction of the variance): negative when values of `a` tend to be smaller than those of `b`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    m, n = len(a), len(b)
    if m == 0 or n == 0:
        raise ValueError(f"mann_whitney_z: need two non-empty samples, got sizes {m} and {n}")
    ranks = average_ranks(np.concatenate([a, b]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))


def memorization(generated: Any, train: Any, heldout: Any, copy_quantile: float = 0.01,
                 chunk: int = DEFAULT_CHUNK) -> Memorization:
    """Distances of generated (M, ...) and held-out real (H, ...) samples to their nearest training sample (the
    training set should hold distinct rows: a duplicated row has a nearest-neighbour distance of 0)."""
    if not 0 < copy_quantile < 1:
        raise ValueError(f"memorization: copy_quantile must lie in (0, 1), got {copy_quantile!r}")
    train_points = as_points(train, "memorization(train)")
    generated_points = as_points(generated, "memorization(generated)")
    heldout_points = as_points(heldout, "memorization(heldout)")
    dims = (train_points.shape[1], generated_points.shape[1], heldout_points.shape[1])
    if len(set(dims)) != 1:
        raise ValueError(f"memorization: train, generated and held-out samples differ in dimension: {dims}")
    if len(train_points) < 2:
        raise ValueError(f"memorization: need at least 2 training samples, got {len(train_points)}")
    generated_distance, generated_nearest = nearest_distances(generated_points, train_points, chunk)
    heldout_distance, heldout_nearest = nearest_distances(heldout_points, train_points, chunk)
    used = np.unique(np.concatenate([generated_nearest, heldout_nearest]))
    spacing = np.zeros(len(train_points), dtype=np.float64)
    spacing[used] = kth_neighbour_distances(train_points, 1, chunk, rows=used)
    floor = np.finfo(np.float64).tiny
    generated_ratio = generated_distance / np.maximum(spacing[generated_nearest], floor)
    heldout_ratio = heldout_distance / np.maximum(spacing[heldout_nearest], floor)
    return Memorization(
        generated_distance=generated_distance.astype(np.float64), nearest_train=generated_nearest,
        generated_ratio=generated_ratio, heldout_distance=heldout_distance.astype(np.float64),
        heldout_ratio=heldout_ratio, copy_quantile=copy_quantile,
        copy_threshold=float(np.quantile(heldout_ratio, copy_quantile)),
    )


def duplicate_pairs(samples: Any, threshold: float, chunk: int = DEFAULT_CHUNK) -> int:
    """Pairs of samples closer than `threshold` to each other (near-duplicates), counted without an N x N matrix."""
    if not threshold > 0:
        raise ValueError(f"duplicate_pairs: threshold must be > 0, got {threshold!r}")
    return close_pairs(as_points(samples, "duplicate_pairs(samples)"), threshold, chunk)


def birthday_support(n_samples: int, pairs: int) -> float:
    """Support size suggested by `pairs` duplicate pairs among `n_samples` samples: C(n, 2) / pairs (+inf with no
    duplicates: the support is larger than this sample can tell)."""
    if n_samples < 2 or pairs < 0:
        raise ValueError(f"birthday_support: need n_samples >= 2 and pairs >= 0, got {n_samples}, {pairs}")
    return math.inf if pairs == 0 else n_samples * (n_samples - 1) / 2 / pairs

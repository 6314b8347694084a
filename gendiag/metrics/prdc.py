"""Precision, recall, density and coverage (Naeem et al. 2020, k = 5) and improved precision and recall
(Kynkäänniemi et al. 2019, k = 3), from k-nearest-neighbour balls around real and generated samples.

Definitions (r_i: distance from real_i to its k-th nearest other real sample; s_j: the same among fakes):
- precision = share of fakes inside at least one real ball, d(real_i, fake_j) < r_i
- recall    = share of reals inside at least one fake ball, d(real_i, fake_j) < s_j
- density   = (1/k) * mean over fakes of the number of real balls that contain the fake
- coverage  = share of reals whose own ball contains at least one fake
Naeem et al.'s metrics use strict inequalities (as the `prdc` package does); Kynkäänniemi et al.'s improved
precision/recall count a point on the ball's boundary as inside (d <= r), as their reference code does.

Everything runs over blocks of real rows, so memory is O(N * chunk), never the N x M distance matrix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gendiag.metrics.neighbours import DEFAULT_CHUNK, as_points, distance_blocks, kth_neighbour_distances


@dataclass(frozen=True)
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ImprovedPR:
    precision: float
    recall: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class _BallCounts:
    real_balls_per_fake: np.ndarray  # (M,) how many real k-NN balls contain each fake
    real_in_fake_ball: np.ndarray  # (N,) whether each real lies in some fake k-NN ball
    real_ball_has_fake: np.ndarray  # (N,) whether each real's own ball holds some fake


def _ball_counts(real: np.ndarray, fake: np.ndarray, k: int, inclusive: bool, chunk: int) -> _BallCounts:
    real_radii = kth_neighbour_distances(real, k, chunk)
    fake_radii = kth_neighbour_distances(fake, k, chunk)
    inside = np.less_equal if inclusive else np.less
    per_fake = np.zeros(len(fake), dtype=np.int64)
    in_fake_ball = np.empty(len(real), dtype=bool)
    has_fake = np.empty(len(real), dtype=bool)
    for start, block in distance_blocks(real, fake, chunk):
        rows = slice(start, start + len(block))
        in_real_ball = inside(block, real_radii[rows, None])
        per_fake += in_real_ball.sum(axis=0)
        has_fake[rows] = in_real_ball.any(axis=1)
        in_fake_ball[rows] = inside(block, fake_radii[None, :]).any(axis=1)
    return _BallCounts(per_fake, in_fake_ball, has_fake)


def _inputs(real: Any, fake: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    real_points, fake_points = as_points(real, "real"), as_points(fake, "fake")
    if real_points.shape[1] != fake_points.shape[1]:
        raise ValueError(f"real and fake samples differ in dimension: {real_points.shape[1]} and "
                         f"{fake_points.shape[1]}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k < min(len(real_points), len(fake_points)):
        raise ValueError(f"k must be an int with 1 <= k < min(N real, N fake) = "
                         f"{min(len(real_points), len(fake_points))}, got {k!r}")
    return real_points, fake_points


def prdc(real: Any, fake: Any, k: int = 5, chunk: int = DEFAULT_CHUNK) -> PRDC:
    """Naeem et al.'s precision, recall, density and coverage of `fake` (M, ...) against `real` (N, ...)."""
    real_points, fake_points = _inputs(real, fake, k)
    counts = _ball_counts(real_points, fake_points, k, inclusive=False, chunk=chunk)
    return PRDC(
        precision=float((counts.real_balls_per_fake > 0).mean()),
        recall=float(counts.real_in_fake_ball.mean()),
        density=float(counts.real_balls_per_fake.mean() / k),
        coverage=float(counts.real_ball_has_fake.mean()),
    )


def improved_precision_recall(real: Any, fake: Any, k: int = 3, chunk: int = DEFAULT_CHUNK) -> ImprovedPR:
    """Kynkäänniemi et al.'s improved precision and recall (boundary counts as inside)."""
    real_points, fake_points = _inputs(real, fake, k)
    counts = _ball_counts(real_points, fake_points, k, inclusive=True, chunk=chunk)
    return ImprovedPR(precision=float((counts.real_balls_per_fake > 0).mean()),
                      recall=float(counts.real_in_fake_ball.mean()))

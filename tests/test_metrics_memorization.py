"""Memorization metrics: hand-computed distances, ratios and the Mann-Whitney z; copies against fresh samples;
near-duplicate pairs and the birthday-paradox support estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from gendiag.metrics import birthday_support, duplicate_pairs, memorization
from gendiag.metrics.memorization import mann_whitney_z


def column(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


def test_distances_ratios_and_copy_share_by_hand() -> None:
    # Training points 0, 10, 20 are 10 apart, so every ratio is the distance over 10.
    train, heldout = column(0, 10, 20), column(1, 12, 25)
    generated = column(0, 10.5, 19, 30)
    result = memorization(generated, train, heldout, copy_quantile=0.5)
    assert result.generated_distance.tolist() == [0, 0.5, 1, 10]
    assert result.nearest_train.tolist() == [0, 1, 2, 2]
    assert result.heldout_distance.tolist() == [1, 2, 5]
    assert result.generated_ratio == pytest.approx([0, 0.05, 0.1, 1.0])
    assert result.copy_threshold == pytest.approx(0.2)  # median of the held-out ratios 0.1, 0.2, 0.5
    assert result.copies.tolist() == [True, True, True, False]
    assert result.copy_share == 0.75
    assert result.median_distance_ratio == pytest.approx(0.75 / 2)
    # U = pairs with generated > held-out: 1 vs 1 ties (1/2), 10 beats all three -> 3.5; m = 4, n = 3
    assert result.mann_whitney_z == pytest.approx((3.5 - 6) / math.sqrt(4 * 3 * 8 / 12))


def test_ratio_uses_the_local_spacing_of_the_training_set() -> None:
    # Training points 0, 1 (spacing 1) and 100, 110 (spacing 10): 0.5 from 0 and 5 from 100 are alike.
    result = memorization(column(0.5, 105), column(0, 1, 100, 110), column(0.3), copy_quantile=0.5)
    assert result.generated_ratio == pytest.approx([0.5, 0.5])


def test_mann_whitney_z_agrees_with_scipy_u() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=55) + 0.3
    u = mannwhitneyu(a, b, method="asymptotic", use_continuity=False).statistic
    assert mann_whitney_z(a, b) == pytest.approx((u - 40 * 55 / 2) / math.sqrt(40 * 55 * 96 / 12))


def test_copies_are_caught_and_fresh_samples_are_not() -> None:
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(5, 6)) * 3

    def draw(n: int) -> np.ndarray:
        return centers[rng.integers(0, 5, n)] + rng.normal(size=(n, 6))

    train, heldout = draw(3000), draw(1000)
    fresh = memorization(draw(1000), train, heldout)
    assert fresh.copy_share < 0.05 and abs(fresh.mann_whitney_z) < 4
    copies = memorization(train[:1000] + 1e-4 * rng.normal(size=(1000, 6)), train, heldout)
    assert copies.copy_share > 0.9 and copies.mann_whitney_z < -20 and copies.median_distance_ratio < 0.01


def test_duplicate_pairs_and_birthday_support_by_hand() -> None:
    points = column(0, 0.1, 0.15, 5, 5.05)
    # (0, 0.1), (0, 0.15), (0.1, 0.15), (5, 5.05)
    assert duplicate_pairs(points, 0.2) == 4
    assert duplicate_pairs(points, 0.2, chunk=2) == 4
    assert birthday_support(5, 4) == pytest.approx(10 / 4)
    assert birthday_support(5, 0) == math.inf


def test_birthday_estimate_recovers_a_small_support() -> None:
    rng = np.random.default_rng(2)
    support = rng.normal(size=(50, 4))
    samples = support[rng.integers(0, 50, 400)]
    estimate = birthday_support(400, duplicate_pairs(samples, 1e-6))
    assert 35 < estimate < 70


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="differ in dimension"):
        memorization(np.zeros((3, 2)), np.zeros((3, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="copy_quantile must lie in"):
        memorization(column(1), column(0, 1), column(2), copy_quantile=1.0)
    with pytest.raises(ValueError, match="threshold must be > 0"):
        duplicate_pairs(column(0, 1), 0.0)

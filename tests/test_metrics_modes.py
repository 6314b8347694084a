"""Known-mode metrics (PacGAN's evaluation) and class coverage on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gendiag.metrics import class_coverage, kl_to_uniform, mode_metrics

CENTERS = np.array([[0.0, 0.0], [1.0, 0.0]])


def test_assignment_quality_capture_and_reverse_kl_by_hand() -> None:
    samples = np.array([
        [0.05, 0.0],  # mode 0 at 0.5 std: high quality
        [0.25, 0.0],  # mode 0 at 2.5 std: high quality
        [0.9, 0.2],  # mode 1 at sqrt(0.05) / 0.1 = 2.236 std: high quality
        [0.4, 0.5],  # mode 0 at sqrt(0.41) / 0.1 = 6.4 std: not high quality
    ])
    metrics = mode_metrics(samples, CENTERS, 0.1)
    assert metrics.nearest_mode.tolist() == [0, 0, 1, 0]
    assert metrics.distance_in_std == pytest.approx([0.5, 2.5, math.sqrt(0.05) / 0.1, math.sqrt(0.41) / 0.1])
    assert metrics.high_quality.tolist() == [True, True, True, False]
    assert metrics.counts.tolist() == [2, 1]
    assert metrics.modes_captured == 2 and metrics.dropped_modes == []
    assert metrics.high_quality_share == 0.75
    # KL(p || uniform) with p = (2/3, 1/3) over K = 2 modes
    expected = 2 / 3 * math.log(2 * 2 / 3) + 1 / 3 * math.log(2 * 1 / 3)
    assert metrics.reverse_kl == pytest.approx(expected, rel=1e-12)


def test_nearest_mode_is_measured_in_units_of_each_modes_std() -> None:
    # (0.4, 0.5) is 0.640 from mode 0 (std 0.1: 6.4 std) and 0.781 from mode 1 (std 1: 0.78 std).
    metrics = mode_metrics(np.array([[0.4, 0.5]]), CENTERS, [0.1, 1.0])
    assert metrics.nearest_mode.tolist() == [1] and metrics.high_quality.tolist() == [True]
    assert metrics.distance_in_std[0] == pytest.approx(math.sqrt(0.61))


def test_threshold_is_strict_three_std() -> None:
    far_apart = np.array([[0.0, 0.0], [10.0, 0.0]])
    metrics = mode_metrics(np.array([[0.75, 0.0], [0.7, 0.0]]), far_apart, 0.25)  # 3.0 and 2.8 std (exact)
    assert metrics.high_quality.tolist() == [False, True]


def test_dropped_mode_and_single_mode_extremes() -> None:
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    two = mode_metrics(np.array([[0.0, 0.0]] * 5 + [[10.0, 0.0]] * 5), centers, 1.0)
    assert two.dropped_modes == [2] and two.modes_captured == 2
    assert two.reverse_kl == pytest.approx(math.log(3 / 2))
    one = mode_metrics(torch.zeros(7, 2), centers, 1.0)
    assert one.reverse_kl == pytest.approx(math.log(3)) and one.modes_captured == 1
    balanced = mode_metrics(centers.repeat(4, axis=0), centers, 1.0)
    assert balanced.reverse_kl == 0.0 and balanced.modes_captured == 3


def test_no_high_quality_sample_gives_infinite_kl_and_nothing_captured() -> None:
    metrics = mode_metrics(np.array([[5.0, 5.0]]), CENTERS, 0.1)
    assert metrics.modes_captured == 0 and metrics.high_quality_share == 0.0 and metrics.reverse_kl == math.inf


def test_kl_to_uniform_definition() -> None:
    assert kl_to_uniform([1, 1, 1, 1]) == 0.0
    assert kl_to_uniform([3, 0, 1]) == pytest.approx(0.75 * math.log(3 * 0.75) + 0.25 * math.log(3 * 0.25))
    with pytest.raises(ValueError, match="histogram of counts >= 0"):
        kl_to_uniform([1, -1])


def test_class_coverage_by_hand() -> None:
    coverage = class_coverage(torch.tensor([0, 0, 1, 2, 2, 2]), n_classes=4)
    assert coverage.counts.tolist() == [2, 1, 3, 0]
    assert coverage.classes_found == 3 and coverage.missing == [3]
    assert coverage.largest_share == 0.5
    expected = 1 / 3 * math.log(4 / 3) + 1 / 6 * math.log(4 / 6) + 1 / 2 * math.log(4 / 2)
    assert coverage.kl_to_uniform == pytest.approx(expected, rel=1e-12)


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="std must be a positive number or one per mode"):
        mode_metrics(np.zeros((3, 2)), CENTERS, [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="samples have dimension 3 but centers 2"):
        mode_metrics(np.zeros((3, 3)), CENTERS, 0.1)
    with pytest.raises(ValueError, match=r"labels must lie in 0 \.\. 1"):
        class_coverage(np.array([0, 2]), n_classes=2)
    with pytest.raises(ValueError, match="integer array"):
        class_coverage(np.array([0.0, 1.0]), n_classes=2)

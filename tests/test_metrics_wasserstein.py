"""W2 between point sets against its definition: the best one-to-one matching's root mean squared distance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from gendiag.metrics import wasserstein2


def brute_force_w2(a: np.ndarray, b: np.ndarray) -> float:
    """The minimum over every permutation of the matched points' root mean squared distance."""
    squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    best = min(squared[range(len(a)), list(order)].mean() for order in itertools.permutations(range(len(a))))
    return float(np.sqrt(best))


def test_hand_computed_cases() -> None:
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    assert wasserstein2(points, points.flip(0)) == pytest.approx(0.0, abs=1e-12)  # same set, another order
    assert wasserstein2(points, points + torch.tensor([3.0, 4.0])) == pytest.approx(5.0)  # a shift moves each by 5
    # {0, 1} to {0.5, 3}: matching 0-0.5 and 1-3 costs (0.25 + 4) / 2; the other way (9 + 0.25) / 2
    assert wasserstein2(np.array([[0.0], [1.0]]), np.array([[3.0], [0.5]])) == pytest.approx(np.sqrt(4.25 / 2))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    *(arrays(np.float64, (n, 2), elements=st.floats(-10, 10, allow_nan=False, width=32)) for _ in range(2)))))
def test_equals_the_best_permutation(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    assert wasserstein2(a, b) == pytest.approx(brute_force_w2(a, b), rel=1e-9, abs=1e-9)


@pytest.mark.slow
def test_a_few_thousand_points_reach_the_optimum() -> None:
    """POT's default iteration cap stops short at this size; the metric must not."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 2, generator=generator), torch.randn(2000, 2, generator=generator) + 0.5
    cost = cdist(a.double().numpy(), b.double().numpy(), metric="sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    assert wasserstein2(a, b) == pytest.approx(float(np.sqrt(cost[rows, cols].mean())), rel=1e-9)


@pytest.mark.parametrize("a, b", [(np.zeros((3, 2)), np.zeros((4, 2))), (np.zeros((0, 2)), np.zeros((0, 2))),
                                  (np.array([[np.nan, 0.0]]), np.zeros((1, 2)))])
def test_bad_inputs_raise(a: np.ndarray, b: np.ndarray) -> None:
    with pytest.raises(ValueError, match="wasserstein2"):
        wasserstein2(a, b)

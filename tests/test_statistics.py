"""gendiag.metrics.statistics against scipy.stats: the same numbers on random, tied and degenerate inputs (the rules
use them in place of scipy.stats, whose import costs about a second)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gendiag.metrics.statistics import (average_ranks, chi2_quantile, kendall_tau, ks_distance_to_normal,
                                        normal_plot_positions, spearman_rho)

# small integers make ties common, as in window medians of a flat loss or repeated D(fake) changes
PAIRS = st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-4, 4), min_size=n, max_size=n), st.lists(st.integers(-4, 4), min_size=n, max_size=n)))


def same(ours: float, theirs: float) -> bool:
    return (math.isnan(ours) and math.isnan(theirs)) or math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(PAIRS)
def test_kendall_tau_is_scipys_tau_b(pair: tuple[list[int], list[int]]) -> None:
    x, y = pair
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        theirs = float(stats.kendalltau(x, y).statistic)
    assert same(kendall_tau(x, y), theirs)


@settings(max_examples=200, deadline=None)
@given(PAIRS)
def test_spearman_rho_is_scipys(pair: tuple[list[int], list[int]]) -> None:
    x, y = pair
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # scipy warns on a constant input and returns NaN, as ours does
        theirs = float(stats.spearmanr(x, y).statistic)
    assert same(spearman_rho(x, y), theirs)


def test_ranks_share_their_mean_where_tied() -> None:
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_tau_of_a_monotone_and_a_reversed_series() -> None:
    assert kendall_tau(range(10), range(10)) == 1.0 and kendall_tau(range(10), range(10, 0, -1)) == -1.0
    assert math.isnan(kendall_tau([1, 2, 3], [5, 5, 5]))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n", [1, 7, 500])
def test_ks_distance_is_scipys_kstest_statistic(seed: int, n: int) -> None:
    values = np.random.default_rng(seed).standard_t(5, size=n)
    assert math.isclose(ks_distance_to_normal(values), float(stats.kstest(values, "norm").statistic),
                        rel_tol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 4000])
def test_plot_positions_are_probplots(n: int) -> None:
    values = np.random.default_rng(n).normal(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's line fit needs 2 points; its plot positions do not
        (theory, _), _ = stats.probplot(values, dist="norm")
    np.testing.assert_allclose(normal_plot_positions(n), theory, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("probability", "dof"), [(0.5, 1), (0.99, 3), (0.999, 24), (0.01, 7), (0.99, 0)])
def test_chi2_quantile_is_scipys(probability: float, dof: int) -> None:
    """Zero degrees of freedom (one declared mode: a histogram of one part) gives NaN, as scipy does."""
    assert same(chi2_quantile(probability, dof), float(stats.chi2.ppf(probability, dof)))


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="no values"):
        ks_distance_to_normal([])

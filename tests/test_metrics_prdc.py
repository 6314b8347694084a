"""Precision, recall, density, coverage and improved precision/recall: hand-computed cases, the definitions on
random sets, chunking that changes nothing, and memory far below an N x N matrix."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics.pairwise import euclidean_distances

from gendiag.metrics import improved_precision_recall, prdc
from gendiag.metrics.neighbours import close_pairs, distance_blocks, kth_neighbour_distances, nearest_distances


def column(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


def test_prdc_hand_computed_on_a_line() -> None:
    # k = 1. Real radii: 0,1,2,3 -> 1; 10, 13 -> 3. Fakes 0.5 and 2.2 lie in two real balls each, 6 and 20 in none.
    # Coverage: reals 0..3 have a fake within radius 1; 10 and 13 do not (nearest fake 4 and 7 away).
    # Fake radii: 0.5, 2.2 -> 1.7; 6 -> 3.8; 20 -> 14: every real lies in some fake ball (13 and 10 in 20's).
    real, fake = column(0, 1, 2, 3, 10, 13), column(0.5, 2.2, 6, 20)
    result = prdc(real, fake, k=1)
    assert result.precision == pytest.approx(2 / 4)
    assert result.density == pytest.approx(4 / 4)
    assert result.coverage == pytest.approx(4 / 6)
    assert result.recall == pytest.approx(1.0)


def test_boundary_counts_for_improved_pr_but_not_for_naeem() -> None:
    # Real radii (k = 1) are all 1; the fake at 3 lies exactly on the ball of real 2.
    real, fake = column(0, 1, 2), column(3, 10)
    assert improved_precision_recall(real, fake, k=1).precision == 0.5
    assert prdc(real, fake, k=1).precision == 0.0


def test_identical_sets_score_perfectly() -> None:
    points = np.random.default_rng(0).normal(size=(200, 3))
    result = prdc(points, points.copy(), k=5)
    assert result.precision == 1.0 and result.recall == 1.0 and result.coverage == 1.0
    assert improved_precision_recall(points, points, k=3).as_dict() == {"precision": 1.0, "recall": 1.0}


def test_disjoint_sets_score_zero() -> None:
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(100, 2)), rng.normal(size=(80, 2)) + 100
    assert prdc(real, fake).as_dict() == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def brute_force(real: np.ndarray, fake: np.ndarray, k: int, inclusive: bool) -> dict[str, float]:
    """The definitions, with full matrices."""
    real_radii = np.sort(euclidean_distances(real, real), axis=1)[:, k]
    fake_radii = np.sort(euclidean_distances(fake, fake), axis=1)[:, k]
    distances = euclidean_distances(real, fake)
    inside = np.less_equal if inclusive else np.less
    in_real = inside(distances, real_radii[:, None])
    return {"precision": in_real.any(0).mean(), "recall": inside(distances, fake_radii[None, :]).any(1).mean(),
            "density": in_real.sum(0).mean() / k, "coverage": (distances.min(1) < real_radii).mean()}


@settings(max_examples=25, deadline=None)
@given(n_real=st.integers(8, 60), n_fake=st.integers(8, 60), dim=st.integers(1, 5), k=st.integers(1, 6),
       chunk=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_matches_definition_for_any_chunk(n_real: int, n_fake: int, dim: int, k: int, chunk: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    real, fake = rng.normal(size=(n_real, dim)), rng.normal(size=(n_fake, dim)) * 1.3 + 0.3
    expected = brute_force(real, fake, k, inclusive=False)
    assert prdc(real, fake, k=k, chunk=chunk).as_dict() == pytest.approx(expected, rel=1e-12)
    assert prdc(real, fake, k=k, chunk=chunk) == prdc(real, fake, k=k, chunk=10_000)
    improved = brute_force(real, fake, k, inclusive=True)
    assert improved_precision_recall(real, fake, k=k, chunk=chunk).as_dict() == pytest.approx(
        {"precision": improved["precision"], "recall": improved["recall"]}, rel=1e-12)


def test_float32_tensors_and_images_are_accepted() -> None:
    rng = np.random.default_rng(2)
    real = torch.from_numpy(rng.random((50, 1, 4, 4), dtype=np.float32))
    fake = torch.from_numpy(rng.random((40, 1, 4, 4), dtype=np.float32))
    flat = prdc(real.reshape(50, -1).numpy(), fake.reshape(40, -1).numpy(), k=3)
    assert prdc(real, fake, k=3) == flat


def test_neighbour_helpers_match_full_matrices() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(37, 3)), rng.normal(size=(23, 3))
    full = euclidean_distances(x, x.copy())  # a copy: `x @ x.T` would take BLAS's syrk path, rounded differently
    np.fill_diagonal(full, 0)
    assert np.array_equal(kth_neighbour_distances(x, 2, chunk=5), np.sort(full, axis=1)[:, 2])
    rows = np.array([4, 0, 36])
    assert np.array_equal(kth_neighbour_distances(x, 1, chunk=2, rows=rows), np.sort(full, axis=1)[rows, 1])
    distance, index = nearest_distances(x, y, chunk=4)
    assert np.array_equal(index, euclidean_distances(x, y).argmin(1))
    assert np.allclose(distance, euclidean_distances(x, y).min(1))
    assert close_pairs(x, 1.0, chunk=6) == int(np.triu(full < 1.0, k=1).sum())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distance_blocks_match_scikit_learn_to_rounding(dtype: type) -> None:
    """Same formula as scikit-learn's, but not bit for bit: a multi-threaded BLAS may split a 64-row product
    differently from the full one and round the last bit differently (seen with 2 threads on one machine)."""
    rng = np.random.default_rng(5)
    x, y = (rng.normal(size=(300, 16)) * 3 + 1).astype(dtype), rng.normal(size=(200, 16)).astype(dtype)
    blocks = np.concatenate([block for _, block in distance_blocks(x, y, chunk=64)])
    assert blocks.dtype == dtype
    np.testing.assert_allclose(blocks, euclidean_distances(x, y), rtol=8 * np.finfo(dtype).eps, atol=0)


def test_memory_stays_far_below_the_full_matrix() -> None:
    n = 4000
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    tracemalloc.start()
    prdc(real, fake, k=5, chunk=128)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < n * n * 8 / 10  # one float64 N x N matrix is 128 MB; the chunked pass stays under a tenth


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="differ in dimension"):
        prdc(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="k must be an int with 1 <= k < min"):
        prdc(np.random.rand(5, 2), np.random.rand(5, 2), k=5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        prdc(np.full((10, 2), np.nan), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        prdc(np.random.rand(10, 2), np.random.rand(10, 2), chunk=0)

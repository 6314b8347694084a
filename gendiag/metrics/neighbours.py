"""Chunked Euclidean distances between point sets, so memory stays O(rows * chunk) instead of a full N x M matrix.

The arithmetic is scikit-learn's `euclidean_distances` (the routine the `prdc` package uses), step for step:
float64 |x|² - 2 x.y + |y|², clipped at 0, then the square root, in float32 when the inputs are float32 (as
scikit-learn's upcast path returns them). The distances are therefore bit-identical to scikit-learn's (a test
checks it), so radii and strict comparisons agree with `prdc` exactly; doing it ourselves with the norms of y
computed once is about three times faster than calling scikit-learn per block on float32 inputs."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

DEFAULT_CHUNK = 256


def as_points(values: Any, name: str) -> np.ndarray:
    """A (N, D) float array from a tensor or array of shape (N, ...): images are flattened, float32/float64 kept."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty batch of shape (N, ...), got shape {array.shape}")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    array = array.reshape(array.shape[0], -1)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: holds NaN or infinite values")
    return array


def _check_chunk(chunk: int) -> None:
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int (rows per block), got {chunk!r}")


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def squared_distances(x: np.ndarray, y: np.ndarray, y_norms: np.ndarray | None = None) -> np.ndarray:
    """Squared distances from each row of x to each row of y (float64 arrays), as scikit-learn computes them:
    |x|^2 - 2 x.y + |y|^2 in float64, clipped at 0 (the cancellation can leave -1e-16 where points coincide)."""
    squared = x @ y.T
    squared *= -2  # in place: one float64 block alive, not two
    squared += _squared_norms(x)[:, None]
    squared += (_squared_norms(y) if y_norms is None else y_norms)[None, :]
    return np.maximum(squared, 0, out=squared)


def _block(x_rows: np.ndarray, y: np.ndarray, y_norms: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Distances from x_rows to y, computed in float64 as scikit-learn does, returned in `dtype`."""
    squared = squared_distances(x_rows, y, y_norms).astype(dtype, copy=False)
    return np.sqrt(squared, out=squared)


def distance_blocks(x: np.ndarray, y: np.ndarray, chunk: int = DEFAULT_CHUNK,
                    same: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, distances from x[first:first+chunk] to all of y). With `same` (x is y) each point's
    distance to itself is set to exactly 0."""
    _check_chunk(chunk)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"point sets have different dimensions: {x.shape[1]} and {y.shape[1]}")
    dtype = np.result_type(x.dtype, y.dtype)
    x64, y64 = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    y_norms = _squared_norms(y64)
    for start in range(0, len(x), chunk):
        block = _block(x64[start:start + chunk], y64, y_norms, dtype)
        if same:
            rows = np.arange(block.shape[0])
            block[rows, start + rows] = 0
        yield start, block


def kth_neighbour_distances(x: np.ndarray, k: int, chunk: int = DEFAULT_CHUNK,
                            rows: np.ndarray | None = None) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of x (the radius of its k-NN ball), shape (N,);
    with `rows` (indices into x), only for those points."""
    if not 1 <= k < len(x):
        raise ValueError(f"k-th neighbour: need 1 <= k < N = {len(x)}, got k = {k}")
    _check_chunk(chunk)
    if rows is None:
        radii = np.empty(len(x), dtype=x.dtype)
        for start, block in distance_blocks(x, x, chunk, same=True):
            radii[start:start + len(block)] = _kth_smallest(block, k)  # index 0: the point itself
        return radii
    rows = np.asarray(rows, dtype=np.int64)
    radii = np.empty(len(rows), dtype=x.dtype)
    x64 = x.astype(np.float64, copy=False)
    norms = _squared_norms(x64)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        block = _block(x64[part], x64, norms, x.dtype)
        block[np.arange(len(part)), part] = 0
        radii[start:start + len(part)] = _kth_smallest(block, k)
    return radii


def _kth_smallest(block: np.ndarray, k: int) -> np.ndarray:
    """Each row's k-th smallest value (from 0): the values `np.partition(block, k, axis=1)[:, k]` gives, about four
    times sooner through torch's `topk` for the small k of neighbour radii (the samples-against-data comparison at
    the end of a run spends a third of its time here)."""
    return torch.from_numpy(block).topk(k + 1, dim=1, largest=False).values[:, k].numpy()


def nearest_distances(x: np.ndarray, y: np.ndarray, chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """For each row of x, the distance to its nearest row of y and that row's index: shapes (N,), (N,)."""
    distance = np.empty(len(x), dtype=np.result_type(x.dtype, y.dtype))
    index = np.empty(len(x), dtype=np.int64)
    for start, block in distance_blocks(x, y, chunk):
        nearest = block.argmin(axis=1)
        index[start:start + len(block)] = nearest
        distance[start:start + len(block)] = block[np.arange(len(block)), nearest]
    return distance, index


def close_pairs(x: np.ndarray, threshold: float, chunk: int = DEFAULT_CHUNK) -> int:
    """Number of unordered pairs i < j with distance(x_i, x_j) < threshold."""
    pairs = 0
    for start, block in distance_blocks(x, x, chunk, same=True):
        columns = np.arange(len(x))
        upper = columns[None, :] > (start + np.arange(len(block)))[:, None]
        pairs += int(np.count_nonzero((block < threshold) & upper))
    return pairs

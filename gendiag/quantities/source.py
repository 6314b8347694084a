"""Does the sampler start from the source the model was trained from?

Flow matching transports any source to any data (eight Gaussians to moons is the standard tutorial), so a source
that is not N(0, I) is a choice, not a bug. The bug is a sampler that starts from another distribution than the
source batches x0 seen in training. These functions draw rows of a declared source (the fact `source=`) without
touching the user's random state, and compare two sets of source rows with the energy distance and its
permutation test (`gendiag.metrics.energy.energy_test`).
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gendiag.metrics.energy import energy_coefficient, energy_test
from gendiag.rules.thresholds import SOURCE_MIN_COEFFICIENT as MIN_COEFFICIENT
from gendiag.rules.thresholds import SOURCE_SIGNIFICANCE as SIGNIFICANCE

MIN_ROWS = 8
"""Fewer rows in either set: no comparison."""
MAX_ROWS = 256
"""Rows of each set compared (evenly spaced): the permutation test's cost grows with the square of the rows."""
PERMUTATIONS = 200
PER_DIMENSION = 8
"""Sets with at most this many values per sample report their mean and standard deviation per dimension."""
_SEED = 20251


def draw_declared(source: Any, n: int, seed: int = _SEED) -> torch.Tensor:
    """At most `n` samples (a (n, ...) batch, detached, as returned) of a declared source: a batch tensor or numpy
    array (its first n rows), or a callable `source(n)` returning one. A callable that takes a `generator` keyword
    gets its own generator seeded with `seed`; any other runs with torch's, numpy's and Python's global random states
    saved and restored around the call, so the user's own draws do not change."""
    if isinstance(source, (torch.Tensor, np.ndarray)):
        batch = torch.as_tensor(source)
    elif callable(source):
        if _takes_generator(source):
            batch = source(n, generator=torch.Generator().manual_seed(seed))
        else:
            numpy_state, python_state = np.random.get_state(), random.getstate()
            try:
                with torch.random.fork_rng():
                    torch.manual_seed(seed)
                    batch = source(n)
            finally:
                np.random.set_state(numpy_state)
                random.setstate(python_state)
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch)
        if not isinstance(batch, torch.Tensor):
            raise TypeError(f"fact 'source': source({n}) must return a tensor of shape (n, ...), got "
                            f"{type(batch).__name__}")
    else:
        raise TypeError(f"fact 'source' must be a callable source(n) -> batch or a batch tensor, got "
                        f"{type(source).__name__}")
    if batch.dim() < 2 or batch.shape[0] < 1:
        raise ValueError(f"fact 'source': expected a batch of shape (n, ...), got shape {tuple(batch.shape)}")
    batch = batch[:n].detach()
    if batch.is_floating_point() and not bool(torch.isfinite(batch).all()):
        raise ValueError("fact 'source': the drawn batch holds NaN or infinite values")
    return batch


def declared_rows(source: Any, n: int, seed: int = _SEED) -> torch.Tensor:
    """`draw_declared`'s samples flattened to rows (n, D), float64, on the CPU."""
    batch = draw_declared(source, n, seed)
    return batch.to("cpu", torch.float64).reshape(batch.shape[0], -1)


@dataclass(frozen=True)
class SourceComparison:
    """Two sets of source rows (a: the training source, b: what it is compared with), (n, D) each.

    energy, p_value: energy distance and its permutation p-value; coefficient: the energy coefficient (0: the same
    distribution, 1: nothing in common); means and stds per dimension (D <= PER_DIMENSION) or over all values;
    differs: significant (p < SIGNIFICANCE) and material (coefficient >= MIN_COEFFICIENT)."""

    rows_a: int
    rows_b: int
    dimension: int
    energy: float
    p_value: float
    coefficient: float
    mean_a: list[float]
    mean_b: list[float]
    std_a: list[float]
    std_b: list[float]
    rms_a: float
    rms_b: float
    differs: bool


def compare_sources(a: torch.Tensor, b: torch.Tensor, seed: int = _SEED) -> SourceComparison | None:
    """Energy test between two sets of rows (flattened per sample), at most MAX_ROWS evenly spaced rows each;
    None when either has fewer than MIN_ROWS rows or their samples hold different numbers of values."""
    a, b = (rows.detach().to("cpu", torch.float64).reshape(rows.shape[0], -1) for rows in (a, b))
    if a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < MIN_ROWS:
        return None
    a, b = _evenly(a, MAX_ROWS), _evenly(b, MAX_ROWS)
    energy, p_value = energy_test(a, b, PERMUTATIONS, torch.Generator().manual_seed(seed))
    coefficient = energy_coefficient(a, b, energy)
    return SourceComparison(
        rows_a=int(a.shape[0]), rows_b=int(b.shape[0]), dimension=int(a.shape[1]), energy=energy, p_value=p_value,
        coefficient=coefficient, mean_a=_moments(a)[0], mean_b=_moments(b)[0], std_a=_moments(a)[1],
        std_b=_moments(b)[1], rms_a=float(a.pow(2).mean().sqrt()), rms_b=float(b.pow(2).mean().sqrt()),
        differs=p_value < SIGNIFICANCE and coefficient >= MIN_COEFFICIENT,
    )


def _moments(rows: torch.Tensor) -> tuple[list[float], list[float]]:
    if rows.shape[1] > PER_DIMENSION:
        rows = rows.reshape(-1, 1)
    return ([round(float(v), 4) for v in rows.mean(0)],
            [round(float(v), 4) for v in rows.std(0, correction=0)])


def _evenly(rows: torch.Tensor, limit: int) -> torch.Tensor:
    if rows.shape[0] <= limit:
        return rows
    return rows[torch.linspace(0, rows.shape[0] - 1, limit).round().long()]


def _takes_generator(source: Any) -> bool:
    try:
        parameters = inspect.signature(source).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): call it without a generator
        return False
    return any(p.name == "generator" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)

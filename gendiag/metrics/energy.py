"""Energy distance between two samples of rows, its permutation test and Székely and Rizzo's energy coefficient:
a two-sample comparison without binning, used to tell whether two sets of inputs (training and sampling, or a
training source and a sampler's start) come from one distribution."""

from __future__ import annotations

import torch


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy distance 2E|A − B| − E|A − A'| − E|B − B'| between two samples (n, D) and (m, D), with unbiased
    within-sample terms (pairs i ≠ j); clipped at 0. It is 0 only for equal distributions and scales like a length.
    The three distance blocks, not `energy_test`'s pooled matrix and labels: half the time (12 against 22 ms at
    1,000 rows a side), which the report's samples-against-data comparison spends six times."""
    _check_rows(a, b)
    a, b = a.double(), b.double()
    n, m = a.shape[0], b.shape[0]
    energy = (2 * torch.cdist(a, b).sum() / (n * m) - torch.cdist(a, a).sum() / (n * (n - 1))
              - torch.cdist(b, b).sum() / (m * (m - 1)))
    return max(float(energy), 0.0)


def energy_test(a: torch.Tensor, b: torch.Tensor, permutations: int = 200,
                generator: torch.Generator | None = None) -> tuple[float, float]:
    """The energy distance of two samples and its permutation p-value (the share of random relabellings of the
    pooled rows whose distance reaches the observed one; 1.0 when `permutations` is 0)."""
    _check_rows(a, b)
    pooled = torch.cat([a, b]).double()
    distances = torch.cdist(pooled, pooled)
    n, m = a.shape[0], b.shape[0]
    labels = torch.zeros(1 + permutations, n + m, dtype=torch.float64)
    labels[0, :n] = 1
    if permutations:
        order = torch.rand(permutations, n + m, generator=generator).argsort(1)
        labels[1:] = (order < n).double()
    to_a = labels @ distances
    within_a = (to_a * labels).sum(1)
    cross = (to_a * (1 - labels)).sum(1)
    within_b = distances.sum() - within_a - 2 * cross
    energy = 2 * cross / (n * m) - within_a / (n * (n - 1)) - within_b / (m * (m - 1))
    observed = float(energy[0])
    p_value = float((1 + (energy[1:] >= energy[0]).sum()) / (1 + permutations))
    return max(observed, 0.0), p_value


def _check_rows(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"energy distance: need at least 2 rows in each sample, got {a.shape[0]} and {b.shape[0]}")


def energy_coefficient(a: torch.Tensor, b: torch.Tensor, energy: float) -> float:
    """Székely and Rizzo's energy coefficient, energy distance / (2 E|A − B|): scale-free, 0 for equal
    distributions and 1 only for distributions with nothing in common. The ratio to the data–source distance alone
    overstates a small gap where the data and the source are close (a unit-scale 2D set against N(0, I))."""
    cross = float(torch.cdist(a.double(), b.double()).mean())
    return energy / (2 * cross) if cross > 0 else 0.0

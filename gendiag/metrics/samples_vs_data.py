"""How far generated samples are from data rows, next to how far the data is from itself at the same sample size.

Every statistic is paired with its floor: the same statistic between disjoint subsets of the data of the samples'
size, so that a gap can be read against sampling noise. Measured:

- scale: the samples' overall standard deviation (square root of the total variance) over the data's, the same
  per dimension (dimensions where the data varies), and the RMS value (about 0) ratio;
- location: the distance between the means in units of the data's spread (the RMS distance of a data row to the
  data mean);
- W2 (exact, `gendiag.metrics.wasserstein`) in the data space when it has at most `LOW_DIM` dimensions, else in the
  space of the data's `PCA_DIM` leading principal components (fitted on the data rows), and, as a yardstick (one
  draw, not averaged: it enters no rule), W2 of as many draws from the Gaussian with the data's mean and covariance;
- energy distance (`gendiag.metrics.energy`) in the same space and on the same subsets as W2, with its floor: a
  second distance between the sets that weighs each point by its distance, not its squared distance, so a few far
  points do not dominate it as they dominate W2, while a diffuse cloud (every sample a little off) raises it;
- coverage (Naeem et al.'s PRDC coverage, k = 5): the share of data rows whose own k-NN ball holds a sample, in
  the same space as W2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from gendiag.metrics.energy import energy_distance
from gendiag.metrics.prdc import prdc
from gendiag.metrics.wasserstein import wasserstein2_later

LOW_DIM = 10  # W2 and coverage in the data space up to this many dimensions
PCA_DIM = 10  # else in this many principal components of the data
MAX_COMPARED = 1000  # samples (and data rows per subset) in W2 and coverage
MAX_REPEATS = 3  # subsets of data rows averaged over; fewer when n is large (each W2 costs ~0.1 s at n = 1000, and
# finish() has ~2 s for the whole report)
COMPARED_VALUES = 5000  # repeats = this / n, within 1..MAX_REPEATS
K_COVERAGE = 5
MIN_SAMPLES = 8
VARYING = 1e-2  # a dimension varies in the data when its std is above this share of the largest one


@dataclass(frozen=True)
class SampleGap:
    """Samples against data rows. `*_floor`: the same statistic for a subset of the data of n rows (the largest
    deviation over the repeats for scale and location, the mean for W2 and coverage); `w2_gaussian` is from the
    first repeat only; `data_spread` and the W2s are in the compared `space`."""

    n_samples: int
    n_data: int
    n_compared: int
    repeats: int
    dimension: int
    space: str
    explained_variance: float
    std_ratio: float
    std_ratio_floor: float
    rms_ratio: float
    dim_std_ratio_low: float
    dim_std_ratio_high: float
    mean_offset: float
    mean_offset_floor: float
    data_spread: float
    w2: float
    w2_floor: float
    w2_gaussian: float
    coverage: float
    coverage_floor: float
    energy: float
    energy_floor: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def w2_over_floor(self) -> float:
        return self.w2 / self.w2_floor if self.w2_floor > 0 else float("inf")

    @property
    def w2_over_spread(self) -> float:
        return self.w2 / self.data_spread if self.data_spread > 0 else float("inf")

    @property
    def energy_over_spread(self) -> float:
        """The energy distance in data spreads (it scales like a length; its floor is near 0, so no ratio to it)."""
        return self.energy / self.data_spread if self.data_spread > 0 else float("inf")


class Projection:
    """The space W2 and coverage are measured in: the data space (D <= LOW_DIM) or the data's leading principal
    components (scikit-learn's PCA with the full SVD: deterministic)."""

    def __init__(self, data: np.ndarray) -> None:
        self.pca = None
        self.explained = 1.0
        if data.shape[1] > LOW_DIM:
            from sklearn.decomposition import PCA

            components = min(PCA_DIM, data.shape[0] - 1, data.shape[1])
            self.pca = PCA(n_components=components, svd_solver="full").fit(data)
            self.explained = float(self.pca.explained_variance_ratio_.sum())

    @property
    def name(self) -> str:
        if self.pca is None:
            return "data space"
        return f"PCA-{self.pca.n_components_} of the data ({self.explained:.0%} of its variance)"

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return values if self.pca is None else self.pca.transform(values)


def compare_to_data(samples: Any, data: Any, generator: torch.Generator | None = None) -> SampleGap:
    """Samples (M, ...) against data rows (N, ...), both flattened; needs M >= MIN_SAMPLES and N >= 2 * MIN_SAMPLES.
    `generator` draws the subsets (a fixed seed when None)."""
    samples = _flat(samples, "samples")
    data = _flat(data, "data")
    if samples.shape[1] != data.shape[1]:
        raise ValueError(f"compare_to_data: samples have {samples.shape[1]} values each, data rows "
                         f"{data.shape[1]}; expected the same")
    if len(samples) < MIN_SAMPLES or len(data) < 2 * MIN_SAMPLES:
        raise ValueError(f"compare_to_data: need at least {MIN_SAMPLES} samples and {2 * MIN_SAMPLES} data rows, "
                         f"got {len(samples)} and {len(data)}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    n = min(len(samples), len(data) // 2, MAX_COMPARED)
    repeats = int(np.clip(COMPARED_VALUES // n, 1, MAX_REPEATS))
    data_mean, data_std = data.mean(0), data.std(0)
    spread = _spread(data, data_mean)
    std_ratio = _spread(samples, samples.mean(0)) / spread
    varying = data_std > VARYING * data_std.max()
    dim_ratio = samples.std(0)[varying] / data_std[varying]
    projection = Projection(data)
    data_low, samples_low = projection(data), projection(samples)
    low_spread = _spread(data_low, data_low.mean(0))
    gaussian = _gaussian_like(data_low, generator)
    coverage, coverage_floor, scale_floor, offset_floor = [], [], [], []
    energy, energy_floor = [], []
    draws = []
    for _ in range(repeats):
        order = torch.randperm(len(data), generator=generator).numpy()
        draws.append((order[:n], order[n:2 * n], torch.randperm(len(samples), generator=generator)[:n].numpy()))
    pairs = [pair for reference, other, picked in draws
             for pair in ((samples_low[picked], data_low[reference]), (data_low[other], data_low[reference]))]
    with wasserstein2_later(pairs + [(gaussian[draws[0][1]], data_low[draws[0][0]])]) as distances:
        for reference, other, picked in draws:
            energy.append(energy_distance(torch.from_numpy(samples_low[picked]),
                                          torch.from_numpy(data_low[reference])))
            energy_floor.append(energy_distance(torch.from_numpy(data_low[other]),
                                                torch.from_numpy(data_low[reference])))
            k = min(K_COVERAGE, n - 1)
            coverage.append(prdc(data_low[reference], samples_low[picked], k=k).coverage)
            coverage_floor.append(prdc(data_low[reference], data_low[other], k=k).coverage)
            subset = data[other]
            ratio = _spread(subset, subset.mean(0)) / spread
            scale_floor.append(max(ratio, 1 / ratio) if ratio > 0 else float("inf"))
            offset_floor.append(float(np.linalg.norm(subset.mean(0) - data_mean)) / spread)
        measured = distances()
    w2, w2_floor, w2_gaussian = measured[0:-1:2], measured[1:-1:2], measured[-1:]
    return SampleGap(
        n_samples=len(samples), n_data=len(data), n_compared=n, repeats=repeats, dimension=data.shape[1],
        space=projection.name, explained_variance=projection.explained,
        std_ratio=std_ratio, std_ratio_floor=max(scale_floor),
        rms_ratio=_rms(samples) / _rms(data) if _rms(data) > 0 else float("inf"),
        dim_std_ratio_low=float(dim_ratio.min()), dim_std_ratio_high=float(dim_ratio.max()),
        mean_offset=float(np.linalg.norm(samples.mean(0) - data_mean)) / spread,
        mean_offset_floor=max(offset_floor), data_spread=low_spread,
        w2=float(np.mean(w2)), w2_floor=float(np.mean(w2_floor)),
        w2_gaussian=float(np.mean(w2_gaussian)),
        coverage=float(np.mean(coverage)), coverage_floor=float(np.mean(coverage_floor)),
        energy=float(np.mean(energy)), energy_floor=float(np.mean(energy_floor)),
    )


def _gaussian_like(data: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """As many draws as data rows from the Gaussian with the data's mean and covariance."""
    noise = torch.randn(data.shape, generator=generator, dtype=torch.float64).numpy()
    values, vectors = np.linalg.eigh(np.atleast_2d(np.cov(data, rowvar=False)))
    return data.mean(0) + (noise * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _flat(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 2:
        raise ValueError(f"compare_to_data: {name} must have shape (N, ...), got {array.shape}")
    array = array.reshape(len(array), -1)
    if not np.isfinite(array).all():
        raise ValueError(f"compare_to_data: {name} hold NaN or infinite values")
    return array


def _spread(values: np.ndarray, mean: np.ndarray) -> float:
    """RMS distance of the rows to `mean`: the square root of the total variance."""
    return float(np.sqrt(((values - mean) ** 2).sum(1).mean()))


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt((values ** 2).mean()))

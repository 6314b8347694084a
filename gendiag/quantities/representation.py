"""Is a sample what the model should see? Checks on a batch of training data or of source noise.

The failure these checks exist for: every "sample" was a 64x64 image of a whole 50,000-point cloud, so every
image in a batch was nearly the same picture (one distinct data point in 4,096 dimensions), its pixels were pure
black and white, and the "noise" the flow started from was such an image too.

Every function takes a batch (a torch.Tensor or numpy array of shape (B, ...): B samples, each flattened to D
values) and returns a frozen dataclass. Any batch that is not a non-empty, finite, real-valued array of at least
two dimensions raises ValueError (TypeError for something that is not an array at all). Computations run in
float64 on values divided by the batch's largest magnitude, so that any finite input gives finite results.

The dataclasses carry the verdicts the probes' rules read (`two_level`, `looks_rendered`, `is_noise`); the numbers
they compare against live in `gendiag.rules.thresholds`. Just over 400 lines: one module for the six checks of one
batch, which share the batch validation and the overflow-safe RMS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from gendiag.metrics.statistics import ks_distance_to_normal
from gendiag.rules.thresholds import (
    DATA_DUPLICATE_TOLERANCE as DUPLICATE_TOLERANCE, NOISE_INDEPENDENCE, NOISE_KS_FLOOR, NOISE_MEAN_LIMIT,
    NOISE_STD_HIGH, NOISE_STD_LOW, RENDER_CONSISTENCY,
)

MIN_SIGNAL_VALUES = 16
"""A sample with fewer values is a point: its coordinates are not commensurate, so the spread of a sample's own
values means nothing and only exact copies count as duplicates."""
MIN_IMAGE_SIDE = 8
"""A square D = side * side with side >= 8 is read as a one-channel image when no image_shape is given."""
POOLED_SIDE = 16
"""Images are compared after average pooling down to about this side: rendering noise is independent from pixel to
pixel and pooling averages it away, while the structure that tells two different images apart survives."""
EXACT_TOLERANCE = 1e-6
MAX_PAIRWISE = 256
MAX_VALUES = 20_000
HISTOGRAM_BINS = 50
MIN_RENDER_IMAGES = 4
MIN_NOISE_VALUES = 32
MIN_NOISE_SAMPLES = 32
_SUBSAMPLE_SEED = 20240


@dataclass(frozen=True)
class Batch:
    """A batch as float64 (B, D) `raw` values and `values` = raw / `unit`, the largest magnitude (1 for an all-zero
    batch)."""

    raw: torch.Tensor
    values: torch.Tensor
    unit: float

    @property
    def samples(self) -> int:
        return int(self.values.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.values.shape[1])


def as_batch(batch: Any, name: str = "batch") -> Batch:
    """Validate a (B, ...) array and flatten each sample. Raises TypeError or ValueError naming `name`."""
    if isinstance(batch, np.ndarray):
        if batch.dtype.kind not in "biuf":
            raise ValueError(f"{name}: expected real numbers, got a numpy array of dtype {batch.dtype}")
        batch = torch.from_numpy(np.ascontiguousarray(batch))
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(batch).__name__}")
    if batch.is_complex():
        raise ValueError(f"{name}: expected real numbers, got dtype {batch.dtype}")
    if batch.dim() < 2:
        raise ValueError(f"{name}: expected shape (B, ...) with B samples of at least one value, "
                         f"got shape {tuple(batch.shape)}")
    if batch.numel() == 0:
        raise ValueError(f"{name}: the batch is empty (shape {tuple(batch.shape)})")
    values = batch.detach().to("cpu", torch.float64).reshape(batch.shape[0], -1)
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name}: the batch holds {int((~torch.isfinite(values)).sum())} NaN or infinite values")
    unit = float(values.abs().max())
    if unit == 0.0:
        unit = 1.0
    return Batch(values, values / unit, unit)


def image_view(batch: Batch, image_shape: Sequence[int] | None = None) -> torch.Tensor | None:
    """The samples as one-channel images (B, H, W) (channels averaged), or None when they are not images.

    With `image_shape` = (C, H, W) or (H, W) the samples must hold exactly that many values (ValueError otherwise);
    without it a square D = side * side with side >= MIN_IMAGE_SIDE is read as a side x side image."""
    values = batch.values
    if image_shape is not None:
        shape = _checked_image_shape(image_shape)
        if math.prod(shape) != batch.dimension:
            raise ValueError(f"image_shape {tuple(shape)} holds {math.prod(shape)} values but a sample has "
                             f"{batch.dimension}")
        if len(shape) == 3:
            return values.reshape(batch.samples, *shape).mean(dim=1)
        return values.reshape(batch.samples, *shape)
    side = math.isqrt(batch.dimension)
    if side * side == batch.dimension and side >= MIN_IMAGE_SIDE:
        return values.reshape(batch.samples, side, side)
    return None


@dataclass(frozen=True)
class Spread:
    """Between-sample spread against within-sample spread.

    within: RMS over samples of the standard deviation of a sample's own values (an image's contrast).
    between: RMS over features of the standard deviation across samples (how much samples differ).
    ratio: between / within; far below 1 when every sample is nearly the same picture (NaN for an all-constant
        batch, infinite when only `within` is zero). Meaningful for samples of >= MIN_SIGNAL_VALUES values."""

    samples: int
    dimension: int
    dimension_per_sample: float
    within: float
    between: float
    ratio: float


def spread(batch: Any) -> Spread:
    """Between-sample against within-sample spread, and the dimension against the batch size."""
    data = as_batch(batch)
    values = data.values
    within = _rms(_rms(values - values.mean(dim=1, keepdim=True), dim=1), dim=0)
    between = _rms(_rms(values - values.mean(dim=0, keepdim=True), dim=0), dim=0)
    return Spread(samples=data.samples, dimension=data.dimension,
                  dimension_per_sample=data.dimension / data.samples,
                  within=float(within) * data.unit, between=float(between) * data.unit,
                  ratio=_ratio(float(between), float(within)))


@dataclass(frozen=True)
class Duplicates:
    """Near-duplicate samples and the effective number of distinct ones.

    relative_distances: (n, n) RMS difference per value between samples, over the scale the criterion names;
    effective_distinct: sum over samples of 1 / (the number of samples within tolerance of it, itself included):
        n when all differ, 1 when all are copies of one. `pool` is the image pooling factor (1: raw values)."""

    samples: int
    dimension: int
    pool: int
    criterion: str
    tolerance: float
    effective_distinct: float
    distinct_fraction: float
    with_duplicate_fraction: float
    median_relative_distance: float
    min_relative_distance: float
    relative_distances: np.ndarray = field(repr=False, compare=False)


def near_duplicates(batch: Any, image_shape: Sequence[int] | None = None,
                    tolerance: float = DUPLICATE_TOLERANCE, max_samples: int = MAX_PAIRWISE) -> Duplicates:
    """Pairwise distances between (at most `max_samples`, evenly spaced) samples, relative to the typical spread of
    a sample's own values; images are average-pooled first (see POOLED_SIDE). Samples of fewer than
    MIN_SIGNAL_VALUES values are compared exactly (relative to the largest magnitude, EXACT_TOLERANCE)."""
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"near_duplicates: tolerance must be a finite number >= 0, got {tolerance!r}")
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
        raise ValueError(f"near_duplicates: max_samples must be an integer >= 1, got {max_samples!r}")
    data = _rows(as_batch(batch), max_samples)
    features, pool = _pooled_features(data, image_shape)
    if data.dimension >= MIN_SIGNAL_VALUES:
        criterion = "within-sample spread"
        scale = float(_rms(_rms(features - features.mean(dim=1, keepdim=True), dim=1), dim=0))
    else:
        criterion, tolerance = "exact", EXACT_TOLERANCE
        scale = 0.0
    if scale == 0.0:
        scale = float(features.abs().max()) or 1.0
    centred = features - features.mean(dim=0, keepdim=True)
    mode = "use_mm_for_euclid_dist_if_necessary" if criterion != "exact" else "donot_use_mm_for_euclid_dist"
    distances = torch.cdist(centred, centred, compute_mode=mode) / (math.sqrt(features.shape[1]) * scale)
    near = distances <= tolerance
    near.fill_diagonal_(True)
    counts = near.sum(dim=1).double()
    n = data.samples
    off_diagonal = distances[~torch.eye(n, dtype=torch.bool)]
    effective = float((1.0 / counts).sum())
    return Duplicates(
        samples=n, dimension=data.dimension, pool=pool, criterion=criterion, tolerance=float(tolerance),
        effective_distinct=effective, distinct_fraction=effective / n,
        with_duplicate_fraction=float((counts > 1).double().mean()),
        median_relative_distance=float(off_diagonal.median()) if n > 1 else math.nan,
        min_relative_distance=float(off_diagonal.min()) if n > 1 else math.nan,
        relative_distances=distances.numpy(),
    )


@dataclass(frozen=True)
class ValueProfile:
    """What values the batch holds (at most 1,000,000 examined, evenly spaced).

    two_level: at least 99% of values sit at the minimum or the maximum (black-and-white pixels);
    looks_0_255: whole numbers in [0, 255] that exceed 1 (images never divided by 255)."""

    count: int
    minimum: float
    maximum: float
    mean: float
    std: float
    rms: float
    distinct: int
    extreme_fraction: float
    two_level: bool
    integer: bool
    looks_0_255: bool
    histogram_counts: np.ndarray = field(repr=False, compare=False)
    histogram_edges: np.ndarray = field(repr=False, compare=False)


def value_profile(batch: Any, max_values: int = 1_000_000) -> ValueProfile:
    """The value histogram and what it says: binary pixels, integers, an unnormalized 0-255 range."""
    data = as_batch(batch)
    flat, raw = data.values.reshape(-1), data.raw.reshape(-1)
    if flat.numel() > max_values:
        index = torch.linspace(0, flat.numel() - 1, max_values, dtype=torch.float64).long()
        flat, raw = flat[index], raw[index]
    minimum, maximum = float(raw.min()), float(raw.max())
    distinct = int(torch.unique(raw).numel())
    extreme = float(((raw == minimum) | (raw == maximum)).double().mean())
    integer = bool((raw == raw.round()).all())
    counts, edges = np.histogram(flat.numpy(), bins=HISTOGRAM_BINS, range=_histogram_range(flat))
    return ValueProfile(
        count=int(flat.numel()), minimum=minimum, maximum=maximum, mean=float(flat.mean()) * data.unit,
        std=float(_rms(flat - flat.mean(), dim=0)) * data.unit, rms=float(_rms(flat, dim=0)) * data.unit,
        distinct=distinct, extreme_fraction=extreme, two_level=distinct >= 2 and extreme >= 0.99,
        integer=integer, looks_0_255=integer and minimum >= 0 and 1 < maximum <= 255 and distinct > 2,
        histogram_counts=counts, histogram_edges=edges * data.unit,
    )


@dataclass(frozen=True)
class ScaleComparison:
    """Data magnitude against the source's (or against N(0, I), RMS 1, when no source batch is given).

    ratio: data RMS / reference RMS (1 when both are zero, infinite when only the reference is)."""

    data_rms: float
    reference_rms: float
    ratio: float
    reference: str


def compare_scale(data: Any, source: Any | None = None) -> ScaleComparison:
    """RMS value of the data against the RMS value of the source distribution the model starts from."""
    batch = as_batch(data, "data")
    data_rms = float(_rms(batch.values.reshape(-1), dim=0))
    if source is None:
        return ScaleComparison(data_rms * batch.unit, 1.0, data_rms * batch.unit, "N(0, I)")
    reference = as_batch(source, "source")
    reference_rms = float(_rms(reference.values.reshape(-1), dim=0))
    ratio = _ratio(data_rms * (batch.unit / reference.unit), reference_rms)
    return ScaleComparison(data_rms * batch.unit, reference_rms * reference.unit,
                           1.0 if math.isnan(ratio) else ratio, "source batch")


@dataclass(frozen=True)
class RenderCheck:
    """Whether each sample looks like a picture of a whole 2D point cloud.

    A rendered point cloud puts its pixel mass in the same place with the same spatial spread in every image, and
    the images are near-duplicates of one another: the image is the distribution, not a sample from it.
    centroid_spread: RMS distance of the images' intensity centroids from their mean, over the mean spatial spread;
    spread_variation: coefficient of variation of the images' spatial spread (both NaN when not measurable)."""

    image: bool
    height: int
    width: int
    measured_images: int
    spatial_spread: float
    centroid_spread: float
    spread_variation: float
    duplicates: Duplicates
    looks_rendered: bool


def rendered_point_cloud(batch: Any, image_shape: Sequence[int] | None = None) -> RenderCheck:
    """Read each sample as an image (see `image_view`) and test the two signs of a rendered point cloud."""
    data = as_batch(batch)
    duplicates = near_duplicates(batch, image_shape)
    view = image_view(_rows(data, MAX_PAIRWISE), image_shape)
    if view is None:
        return RenderCheck(False, 0, 0, 0, math.nan, math.nan, math.nan, duplicates, False)
    height, width = int(view.shape[1]), int(view.shape[2])
    weights = view - view.min()
    mass = weights.sum(dim=(1, 2))
    lit = mass > 0
    weights, mass = weights[lit], mass[lit]
    measured = int(lit.sum())
    if measured < MIN_RENDER_IMAGES:
        return RenderCheck(True, height, width, measured, math.nan, math.nan, math.nan, duplicates, False)
    rows = torch.arange(height, dtype=torch.float64)[None, :, None]
    columns = torch.arange(width, dtype=torch.float64)[None, None, :]
    centre_row = (weights * rows).sum(dim=(1, 2)) / mass
    centre_column = (weights * columns).sum(dim=(1, 2)) / mass
    squared = (rows - centre_row[:, None, None]) ** 2 + (columns - centre_column[:, None, None]) ** 2
    spatial = ((weights * squared).sum(dim=(1, 2)) / mass).sqrt()
    mean_spatial = float(spatial.mean())
    centroid_offsets = (centre_row - centre_row.mean()) ** 2 + (centre_column - centre_column.mean()) ** 2
    centroid_spread = _ratio(float(centroid_offsets.mean().sqrt()), mean_spatial)
    variation = _ratio(float(spatial.std(correction=0)), mean_spatial)
    looks = (measured == int(view.shape[0]) and mean_spatial >= 1.0 and centroid_spread <= RENDER_CONSISTENCY
             and variation <= RENDER_CONSISTENCY and duplicates.distinct_fraction <= 0.5)
    return RenderCheck(True, height, width, measured, mean_spatial, centroid_spread, variation, duplicates, looks)


@dataclass(frozen=True)
class NoiseCheck:
    """Whether a source batch looks like the intended N(0, I) noise.

    mean, std: over all values; skewness, excess_kurtosis and ks_statistic (Kolmogorov-Smirnov distance to the
    normal law of the same mean and std) describe the shape, NaN for a constant batch; independence: the spread of
    each value across samples over the spread of all values (about 1 for independent draws, near 0 when every
    source sample is the same picture). A test with too few values or samples to judge passes."""

    values: int
    samples: int
    mean: float
    std: float
    skewness: float
    excess_kurtosis: float
    ks_statistic: float
    ks_limit: float
    independence: float
    mean_ok: bool
    spread_ok: bool
    shape_ok: bool
    independent_ok: bool

    @property
    def is_noise(self) -> bool:
        return self.mean_ok and self.spread_ok and self.shape_ok and self.independent_ok


def noise_check(source: Any, max_values: int = MAX_VALUES) -> NoiseCheck:
    """Mean, spread, normality (moments and a KS distance on at most `max_values` values drawn with a fixed
    generator) and independence across samples of a source batch, against N(0, I)."""
    data = as_batch(source, "source")
    flat = data.values.reshape(-1)
    if flat.numel() > max_values:
        generator = torch.Generator().manual_seed(_SUBSAMPLE_SEED)
        flat = flat[torch.randperm(flat.numel(), generator=generator)[:max_values]]
    n = int(flat.numel())
    centred = flat - flat.mean()
    scale = float(_rms(centred, dim=0))
    mean, std = float(flat.mean()) * data.unit, scale * data.unit
    if scale > 0:
        z = centred / scale
        skewness, kurtosis = float((z ** 3).mean()), float((z ** 4).mean()) - 3.0
        ks = ks_distance_to_normal(z.numpy())
    else:
        skewness = kurtosis = math.nan
        ks = 1.0
    values = data.values
    between = float(_rms(_rms(values - values.mean(dim=0, keepdim=True), dim=0), dim=0))
    pooled = float(_rms(values.reshape(-1) - values.mean(), dim=0))
    independence = _ratio(between, pooled)
    enough = n >= MIN_NOISE_VALUES
    limit = max(NOISE_KS_FLOOR, 2.0 / math.sqrt(max(n, 1)))
    return NoiseCheck(
        values=n, samples=data.samples, mean=mean, std=std, skewness=skewness, excess_kurtosis=kurtosis,
        ks_statistic=ks, ks_limit=limit, independence=independence,
        mean_ok=not enough or abs(mean) <= max(NOISE_MEAN_LIMIT, 5.0 / math.sqrt(n)),
        spread_ok=not enough or NOISE_STD_LOW <= std <= NOISE_STD_HIGH,
        shape_ok=not enough or ks <= limit,
        independent_ok=data.samples < MIN_NOISE_SAMPLES or independence >= NOISE_INDEPENDENCE,
    )


def _checked_image_shape(image_shape: Any) -> tuple[int, ...]:
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list, torch.Size)) else None
    if (shape is None or len(shape) not in (2, 3)
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise ValueError(f"image_shape must be (C, H, W) or (H, W) of positive integers, got {image_shape!r}")
    return tuple(int(s) for s in shape)


def _rows(batch: Batch, limit: int) -> Batch:
    """At most `limit` evenly spaced samples."""
    if batch.samples <= limit:
        return batch
    index = torch.linspace(0, batch.samples - 1, limit, dtype=torch.float64).round().long()
    return Batch(batch.raw[index], batch.values[index], batch.unit)


def _pooled_features(batch: Batch, image_shape: Sequence[int] | None) -> tuple[torch.Tensor, int]:
    view = image_view(batch, image_shape)
    if view is None:
        return batch.values, 1
    pool = max(1, min(view.shape[1], view.shape[2]) // POOLED_SIDE)
    if pool == 1:
        return view.reshape(batch.samples, -1), 1
    pooled = torch.nn.functional.avg_pool2d(view[:, None], pool)
    return pooled.reshape(batch.samples, -1), pool


def _histogram_range(normalized: torch.Tensor) -> tuple[float, float]:
    """Bin range inside [-1, 1] (values divided by their largest magnitude), so edges times the unit stay finite;
    a constant batch gets a half-unit range ending (or starting) at its value."""
    low, high = float(normalized.min()), float(normalized.max())
    if low < high:
        return low, high
    return (low - 0.5, low) if low > 0 else (low, low + 0.5)


def _rms(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Root mean square along `dim`, computed on values divided by their largest magnitude (no underflow)."""
    peak = values.abs().amax(dim=dim, keepdim=True)
    safe = torch.where(peak > 0, peak, torch.ones_like(peak))
    return peak.squeeze(dim) * ((values / safe) ** 2).mean(dim=dim).sqrt()


def _ratio(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return numerator / denominator
    return math.inf if numerator > 0 else math.nan

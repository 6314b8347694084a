"""Data-representation checks: the flagship's rendered point clouds against points, digits, MNIST and noise, and
fuzzing (any array gives a result or the documented ValueError/TypeError)."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gendiag.quantities import representation as rep
from gendiag.data import load_digits, load_mnist, make_distribution, rasterize

POINTS = 50_000


def renders(name: str, images: int, seed: int, mode: str = "binary", **params: float) -> torch.Tensor:
    """`images` 64x64 renders over [-5, 5]^2 of 50,000 points each, flattened to 4,096 values (the flagship's
    data); `params` go to the distribution."""
    generator = torch.Generator().manual_seed(seed)
    distribution = make_distribution(name, **params)
    clouds = torch.stack([distribution.sample(POINTS, generator=generator) for _ in range(images)])
    return rasterize(clouds, size=64, scale=5.0, mode=mode).images


@pytest.fixture(scope="module")
def moons_images() -> torch.Tensor:
    return renders("moons", 24, seed=0, noise=0.05, scale=5.0)


@pytest.fixture(scope="module")
def gaussian_images() -> torch.Tensor:
    return renders("gaussian", 32, seed=1)


def test_flagship_data_is_one_distinct_rendered_binary_picture(moons_images: torch.Tensor) -> None:
    render = rep.rendered_point_cloud(moons_images)
    assert render.image and (render.height, render.width) == (64, 64)
    assert render.duplicates.pool == 4 and render.duplicates.criterion == "within-sample spread"
    assert render.duplicates.effective_distinct < 1.5
    assert render.duplicates.median_relative_distance < 0.2
    assert render.centroid_spread < 0.02 and render.spread_variation < 0.02 and render.looks_rendered
    values = rep.value_profile(moons_images)
    assert values.two_level and values.distinct == 2 and values.integer and not values.looks_0_255
    sp = rep.spread(moons_images)
    assert sp.dimension == 4096 and sp.dimension_per_sample == pytest.approx(4096 / 24)
    assert sp.ratio < 0.4


def test_density_renders_are_still_duplicates_but_not_binary() -> None:
    images = renders("moons", 12, seed=2, mode="density", noise=0.05, scale=5.0)
    render = rep.rendered_point_cloud(images)
    assert render.looks_rendered and render.duplicates.effective_distinct < 1.5
    assert not rep.value_profile(images).two_level


def test_flagship_source_is_not_noise(gaussian_images: torch.Tensor) -> None:
    noise = rep.noise_check(gaussian_images)
    assert not noise.is_noise
    assert not noise.shape_ok and not noise.independent_ok and not noise.mean_ok and not noise.spread_ok
    assert noise.ks_statistic > 0.3 and noise.independence < 0.6
    assert rep.rendered_point_cloud(gaussian_images).looks_rendered


def test_real_images_are_distinct_and_not_rendered() -> None:
    digits = load_digits()[0][:256]
    mnist = load_mnist()[0][:256]
    for images, shape in ((digits * 2 - 1, (1, 8, 8)), (mnist, (1, 28, 28)), (mnist, None)):
        render = rep.rendered_point_cloud(images, image_shape=shape)
        assert render.image and not render.looks_rendered
        assert render.duplicates.distinct_fraction > 0.9
        assert not rep.value_profile(images).two_level


def test_pixel_noise_and_point_clouds_pass() -> None:
    generator = torch.Generator().manual_seed(3)
    for noise in (torch.randn(256, 2, generator=generator), torch.randn(64, 4096, generator=generator)):
        check = rep.noise_check(noise)
        assert check.is_noise, check
        assert abs(check.std - 1) < 0.1 and check.independence > 0.9
        assert not rep.rendered_point_cloud(noise).looks_rendered
    points = make_distribution("moons", noise=0.05).sample(256, generator=generator)
    duplicates = rep.near_duplicates(points)
    assert duplicates.criterion == "exact" and duplicates.effective_distinct == 256


def test_exact_copies_of_points_are_duplicates() -> None:
    points = torch.tensor([[0.5, -1.0]]).repeat(40, 1)
    points[:10] += torch.arange(1.0, 11.0)[:, None]
    duplicates = rep.near_duplicates(points)
    assert duplicates.effective_distinct == pytest.approx(11.0)
    assert duplicates.with_duplicate_fraction == pytest.approx(30 / 40)


def test_unnormalized_bytes_and_scale() -> None:
    mnist = load_mnist()[0][:128]
    raw = (mnist * 255).round().to(torch.uint8)
    values = rep.value_profile(raw)
    assert values.looks_0_255 and values.integer and values.maximum == 255
    scale = rep.compare_scale(raw, torch.randn(128, 784, generator=torch.Generator().manual_seed(0)))
    assert scale.reference == "source batch" and 50 < scale.ratio < 150
    assert rep.compare_scale(mnist).ratio == pytest.approx(rep.compare_scale(mnist).data_rms)
    assert rep.compare_scale(torch.zeros(3, 2), torch.zeros(3, 2)).ratio == 1.0
    assert rep.compare_scale(torch.ones(3, 2), torch.zeros(3, 2)).ratio == math.inf


@pytest.mark.parametrize("batch, error, match", [
    (torch.zeros(5), ValueError, r"expected shape \(B, \.\.\.\)"),
    (torch.zeros(0, 3), ValueError, "empty"),
    (torch.tensor([[1.0, float("nan")]]), ValueError, "1 NaN or infinite"),
    (torch.zeros(2, 2, dtype=torch.complex64), ValueError, "real numbers"),
    (np.array([["a", "b"]]), ValueError, "real numbers"),
    ([[1.0, 2.0]], TypeError, "torch.Tensor or numpy array"),
])
def test_bad_batches_raise_one_clear_error(batch: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        rep.spread(batch)


def test_bad_image_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"image_shape \(1, 8, 8\) holds 64 values but a sample has 4096"):
        rep.rendered_point_cloud(torch.zeros(4, 4096), image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="positive integers"):
        rep.near_duplicates(torch.zeros(4, 64), image_shape=(8, -8))
    with pytest.raises(ValueError, match="tolerance"):
        rep.near_duplicates(torch.zeros(4, 64), tolerance=float("nan"))


def _arrays() -> st.SearchStrategy[np.ndarray]:
    return st.one_of(
        hnp.arrays(dtype=st.sampled_from([np.float64, np.float32]),
                   shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
                   elements=st.floats(allow_nan=True, allow_infinity=True, width=32)),
        hnp.arrays(dtype=np.float64, shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=20),
                   elements=st.floats(allow_nan=False, allow_infinity=False)),
        hnp.arrays(dtype=st.sampled_from([np.int64, np.uint8, np.bool_]),
                   shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=18)),
    )


def _finite_or_nan(value: float) -> bool:
    return math.isnan(value) or math.isfinite(value) or value == math.inf


@settings(max_examples=150, deadline=None)
@given(array=_arrays(), as_tensor=st.booleans())
def test_fuzz_any_array_gives_a_result_or_value_error(array: np.ndarray, as_tensor: bool) -> None:
    batch = torch.from_numpy(array.copy()) if as_tensor else array
    try:
        sp = rep.spread(batch)
    except ValueError:
        bad = array.ndim < 2 or array.size == 0 or not np.isfinite(array.astype(np.float64)).all()
        assert bad, f"valid array of shape {array.shape} was refused"
        return
    assert array.ndim >= 2 and array.size > 0
    assert math.isfinite(sp.within) and math.isfinite(sp.between) and sp.within >= 0 and sp.between >= 0
    duplicates = rep.near_duplicates(batch)
    assert 1 - 1e-9 <= duplicates.effective_distinct <= duplicates.samples + 1e-9
    assert 0 <= duplicates.with_duplicate_fraction <= 1
    values = rep.value_profile(batch)
    assert values.minimum <= values.mean <= values.maximum or math.isclose(values.minimum, values.maximum)
    assert int(values.histogram_counts.sum()) == values.count and math.isfinite(values.rms)
    render = rep.rendered_point_cloud(batch)
    assert not (render.looks_rendered and not render.image)
    noise = rep.noise_check(batch)
    assert math.isfinite(noise.mean) and math.isfinite(noise.std) and 0 <= noise.ks_statistic <= 1
    assert _finite_or_nan(noise.independence)
    scale = rep.compare_scale(batch, batch)
    assert scale.ratio == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(array=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=24),
                        elements=st.floats(-1e6, 1e6, allow_subnormal=False)),
       power=st.integers(-30, 30))
def test_fuzz_results_scale_with_powers_of_two(array: np.ndarray, power: int) -> None:
    """Multiplying by 2**k is exact in floating point: relative results stay equal, absolute ones scale."""
    scaled = array * 2.0 ** power
    before, after = rep.spread(array), rep.spread(scaled)
    assert after.ratio == before.ratio or (math.isnan(after.ratio) and math.isnan(before.ratio))
    assert after.within == pytest.approx(before.within * 2.0 ** power, rel=1e-12, abs=0)
    assert rep.near_duplicates(scaled).effective_distinct == rep.near_duplicates(array).effective_distinct


@settings(max_examples=60, deadline=None)
@given(array=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                        elements=st.floats(-1e3, 1e3)))
def test_fuzz_a_batch_stacked_on_its_copy_is_at_most_half_distinct(array: np.ndarray) -> None:
    single = rep.near_duplicates(array)
    double = rep.near_duplicates(np.concatenate([array, array]))
    assert double.distinct_fraction <= 0.5 + 1e-9
    assert double.effective_distinct <= single.effective_distinct + 1e-9

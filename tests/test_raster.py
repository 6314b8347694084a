"""Rasterizer: the original binary convention pixel for pixel, density mass, batch/loop equality, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gendiag.data import rasterize

FAST = settings(max_examples=40, deadline=None)
sizes = st.integers(1, 32)
scales = st.floats(0.1, 10)


def clouds(max_batch: int = 4, max_points: int = 60) -> st.SearchStrategy[np.ndarray]:
    """Batches of point clouds reaching well outside [-scale, scale]^2 for any scale in `scales`."""
    shape = st.tuples(st.integers(1, max_batch), st.integers(0, max_points), st.just(2))
    return arrays(np.float64, shape, elements=st.floats(-25, 25, allow_nan=False, width=64))


def original_binary(points: np.ndarray, size: int, scale: float) -> np.ndarray:
    """The failed project's renderer, one Python int() per point."""
    image = np.zeros((size, size), dtype=np.float32)
    for x, y in points:
        col = min(max(int((x + scale) / (2 * scale) * size), 0), size - 1)
        row = min(max(int((y + scale) / (2 * scale) * size), 0), size - 1)
        image[row, col] = 1
    return image.reshape(-1)


def test_binary_matches_hand_computed_pixels() -> None:
    points = torch.tensor([[0.0, 0.0],     # normalized (.5, .5) -> 2, 2 -> flat 10
                           [-1.0, -1.0],   # (0, 0) -> flat 0
                           [1.0, 1.0],     # (1, 1) -> 4 clamped to 3 -> flat 15, on the square so not counted
                           [-1.2, 0.3],    # x -> int(-0.4) = 0, y -> int(2.6) = 2 -> flat 8, outside
                           [-1.5, 0.9],    # x -> int(-1.0) = -1 -> 0, y -> int(3.8) = 3 -> flat 12, outside
                           [0.49, -0.51],  # x -> int(2.98) = 2, y -> int(0.98) = 0 -> flat 2
                           [3.0, -7.0]],   # x -> 8 -> 3, y -> -12 -> 0 -> flat 3, outside
                          dtype=torch.float64)
    raster = rasterize(points, size=4, scale=1.0)
    expected = torch.zeros(1, 16)
    expected[0, [0, 2, 3, 8, 10, 12, 15]] = 1
    assert torch.equal(raster.images, expected)
    assert raster.clamped.tolist() == [3] and raster.clamped.dtype == torch.int64
    assert raster.mass.tolist() == pytest.approx([4 / 7])
    image = rasterize(points, size=4, scale=1.0, flatten=False).images
    assert image.shape == (1, 1, 4, 4) and image[0, 0, 3, 0] == 1 and image[0, 0, 0, 3] == 1


@FAST
@given(points=clouds(), size=sizes, scale=scales)
def test_binary_equals_the_original_per_point_loop(points: np.ndarray, size: int, scale: float) -> None:
    raster = rasterize(torch.from_numpy(points), size=size, scale=scale)
    expected = np.stack([original_binary(cloud, size, scale) for cloud in points])
    np.testing.assert_array_equal(raster.images.numpy(), expected)
    assert raster.images.dtype == torch.float32 and raster.images.shape == (len(points), size * size)
    assert set(np.unique(raster.images.numpy())) <= {0.0, 1.0}
    assert raster.clamped.tolist() == (np.abs(points) > scale).any(axis=2).sum(axis=1).tolist()


@FAST
@given(points=clouds(), size=sizes, scale=scales, mode=st.sampled_from(["binary", "density"]), seed=st.integers(0, 99))
def test_permuting_points_changes_nothing(points: np.ndarray, size: int, scale: float, mode: str, seed: int) -> None:
    tensor = torch.from_numpy(points)
    order = torch.randperm(tensor.shape[1], generator=torch.Generator().manual_seed(seed))
    first, permuted = rasterize(tensor, size, scale, mode), rasterize(tensor[:, order], size, scale, mode)
    assert torch.equal(first.images, permuted.images) and torch.equal(first.clamped, permuted.clamped)


@FAST
@given(points=clouds(), size=sizes, scale=scales)
def test_density_is_scaled_to_unit_peak_and_its_mass_is_the_in_bounds_fraction(points: np.ndarray, size: int,
                                                                               scale: float) -> None:
    raster = rasterize(torch.from_numpy(points), size=size, scale=scale, mode="density")
    images = raster.images.numpy()
    assert ((images >= 0) & (images <= 1)).all()
    inside = ~(np.abs(points) > scale).any(axis=2)
    n_points = points.shape[1]
    expected_mass = inside.sum(axis=1) / max(n_points, 1)
    np.testing.assert_allclose(raster.mass.numpy(), expected_mass, rtol=1e-6)
    np.testing.assert_array_equal(images.max(axis=1), (inside.sum(axis=1) > 0).astype(np.float32))
    assert raster.clamped.tolist() == (~inside).sum(axis=1).tolist()
    binary_of_inside = [original_binary(cloud[keep], size, scale) for cloud, keep in zip(points, inside)]
    np.testing.assert_array_equal(images > 0, np.stack(binary_of_inside) > 0)


def test_density_is_numpys_histogram_over_the_square() -> None:
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(3, 5000, 2, generator=gen, dtype=torch.float64) * 2.5
    raster = rasterize(points, size=16, scale=5.0, mode="density")
    for cloud, image, mass in zip(points.numpy(), raster.images.numpy(), raster.mass.numpy()):
        counts, _, _ = np.histogram2d(cloud[:, 1], cloud[:, 0], bins=16, range=[[-5, 5], [-5, 5]])
        histogram = counts.reshape(-1) / len(cloud)
        assert histogram.sum() == pytest.approx(mass)
        np.testing.assert_allclose(image, histogram / histogram.max(), rtol=1e-6)


@pytest.mark.parametrize("mode", ["binary", "density"])
def test_batched_equals_rendering_one_image_at_a_time(mode: str) -> None:
    points = torch.rand(8, 2000, 2, generator=torch.Generator().manual_seed(1)) * 14 - 7
    batched = rasterize(points, size=32, scale=5.0, mode=mode, flatten=False)
    singles = [rasterize(cloud, size=32, scale=5.0, mode=mode, flatten=False) for cloud in points]
    assert torch.equal(batched.images, torch.cat([single.images for single in singles]))
    assert torch.equal(batched.clamped, torch.cat([single.clamped for single in singles]))
    assert torch.equal(batched.images.reshape(8, -1), rasterize(points, 32, 5.0, mode).images)


def test_empty_clouds_give_blank_images() -> None:
    for mode in ("binary", "density"):
        raster = rasterize(torch.zeros(2, 0, 2), size=4, mode=mode)
        assert raster.images.shape == (2, 16) and not raster.images.any() and raster.mass.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("points,kwargs,argument", [
    (torch.tensor([[0.0, float("nan")]]), {}, "points"), (torch.tensor([[float("inf"), 0.0]]), {}, "points"),
    (torch.zeros(5, 3), {}, "points"), (torch.zeros(5), {}, "points"), (torch.zeros(2, 5, 2, 1), {}, "points"),
    (torch.zeros(5, 2, dtype=torch.int64), {}, "points"),
    (torch.zeros(5, 2), {"size": 0}, "size"), (torch.zeros(5, 2), {"size": -3}, "size"),
    (torch.zeros(5, 2), {"size": 8.0}, "size"), (torch.zeros(5, 2), {"scale": 0.0}, "scale"),
    (torch.zeros(5, 2), {"scale": -1.0}, "scale"), (torch.zeros(5, 2), {"scale": float("nan")}, "scale"),
    (torch.zeros(5, 2), {"mode": "histogram"}, "mode"),
])
def test_bad_arguments_name_the_argument(points: torch.Tensor, kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=f"'{argument}'"):
        rasterize(points, **kwargs)


def test_points_must_be_a_tensor() -> None:
    with pytest.raises(TypeError, match="'points'"):
        rasterize(np.zeros((5, 2)))

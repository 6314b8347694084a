"""Toy samplers: shapes and seeding, support and density properties, the published defaults, clear bad-argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal
from sklearn.datasets import make_circles, make_moons

from gendiag.data import DISTRIBUTIONS, make_distribution

FAST = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**31 - 1)
offsets = st.tuples(st.floats(-10, 10), st.floats(-10, 10))
scales = st.floats(0.1, 10)


def draw(name: str, n: int, seed: int, **params: object) -> torch.Tensor:
    return make_distribution(name, **params).sample(n, generator=torch.Generator().manual_seed(seed))


def grid_integral(dist, half_width: float, cells: int = 800) -> float:
    """Riemann sum of exp(log_prob) over [-half_width, half_width]^2."""
    axis = (torch.arange(cells, dtype=torch.float64) + 0.5) / cells * 2 * half_width - half_width
    xs, ys = torch.meshgrid(axis, axis, indexing="xy")
    density = dist.log_prob(torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)).double().exp()
    return float(density.sum()) * (2 * half_width / cells) ** 2


@FAST
@given(name=st.sampled_from(sorted(DISTRIBUTIONS)), n=st.integers(0, 300), seed=seeds)
def test_every_sampler_is_float32_finite_and_seeded(name: str, n: int, seed: int) -> None:
    first, again = draw(name, n, seed), draw(name, n, seed)
    assert first.shape == (n, 2) and first.dtype == torch.float32
    assert torch.isfinite(first).all()
    assert torch.equal(first, again)
    if n >= 10:
        assert not torch.equal(first, draw(name, n, seed + 1))


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_samplers_leave_the_global_rng_alone_and_fit_their_bounds(name: str) -> None:
    state = torch.get_rng_state()
    points = draw(name, 4000, 0)
    assert torch.equal(state, torch.get_rng_state())
    (xmin, ymin), (xmax, ymax) = make_distribution(name).bounds
    inside = (points[:, 0] >= xmin) & (points[:, 0] <= xmax) & (points[:, 1] >= ymin) & (points[:, 1] <= ymax)
    assert inside.float().mean() > 0.999


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_log_prob_exists_exactly_where_the_density_is_known(name: str) -> None:
    dist = make_distribution(name)
    assert dist.has_density == (name in {"gaussian", "stretched_gaussian", "mixture", "ring", "grid",
                                         "checkerboard", "checkerboard4"})
    if dist.has_density:
        log_p = dist.log_prob(dist.sample(100, generator=torch.Generator().manual_seed(0)))
        assert log_p.shape == (100,) and log_p.dtype == torch.float32 and torch.isfinite(log_p).all()
    else:
        with pytest.raises(NotImplementedError, match=name):
            dist.log_prob(torch.zeros(3, 2))


@FAST
@given(mean=offsets, a=st.floats(0.3, 3), b=st.floats(0.3, 3), rho=st.floats(-0.9, 0.9), seed=seeds)
def test_gaussian_log_prob_matches_scipy(mean: tuple[float, float], a: float, b: float, rho: float,
                                         seed: int) -> None:
    cov = [[a * a, rho * a * b], [rho * a * b, b * b]]
    dist = make_distribution("gaussian", mean=mean, cov=cov)
    points = dist.sample(200, generator=torch.Generator().manual_seed(seed))
    expected = multivariate_normal(mean, cov).logpdf(points.double().numpy())
    np.testing.assert_allclose(dist.log_prob(points).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_stretched_gaussian_has_the_stated_moments() -> None:
    points = draw("stretched_gaussian", 100_000, 3).double()
    torch.testing.assert_close(points.mean(0), torch.tensor([-2.0, 1.0], dtype=torch.float64), atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(points.T), torch.tensor([[1.5, 0.5], [0.5, 0.8]], dtype=torch.float64),
                               atol=0.03, rtol=0)


@FAST
@given(n_modes=st.integers(1, 12), radius=st.floats(0.5, 5), std=st.floats(0.001, 0.05), seed=seeds)
def test_ring_samples_sit_near_the_radius_and_nearest_a_mode(n_modes: int, radius: float, std: float,
                                                              seed: int) -> None:
    dist = make_distribution("ring", n_modes=n_modes, radius=radius, std=std)
    points = dist.sample(500, generator=torch.Generator().manual_seed(seed))
    assert ((points.norm(dim=1) - radius).abs() < 6 * std + 1e-5).all()
    assert dist.modes.shape == (n_modes, 2) and dist.modes.dtype == torch.float32 and dist.mode_std == std
    assert (torch.cdist(points, dist.modes).min(dim=1).values < 6 * std).all()


@FAST
@given(n_side=st.integers(1, 6), spacing=st.floats(0.5, 4), std=st.floats(0.001, 0.05), seed=seeds)
def test_grid_samples_are_nearest_to_a_lattice_mode(n_side: int, spacing: float, std: float, seed: int) -> None:
    dist = make_distribution("grid", n_side=n_side, spacing=spacing, std=std)
    points = dist.sample(500, generator=torch.Generator().manual_seed(seed))
    assert dist.modes.shape == (n_side * n_side, 2)
    torch.testing.assert_close(dist.modes.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    assert (torch.cdist(points, dist.modes).min(dim=1).values < 6 * std + 1e-5).all()


def test_ring_and_grid_defaults_follow_pacgan() -> None:
    ring, grid = make_distribution("ring"), make_distribution("grid")
    assert ring.modes.shape == (8, 2) and ring.mode_std == 0.01
    torch.testing.assert_close(ring.modes.norm(dim=1), torch.ones(8))
    torch.testing.assert_close(ring.modes[2], torch.tensor([0.0, 1.0]))
    assert grid.mode_std == 0.05
    expected = {(float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(row) for row in grid.modes.tolist()} == expected


@settings(max_examples=10, deadline=None)
@given(k=st.integers(1, 5), std=st.floats(0.05, 0.5), seed=seeds)
def test_mixture_density_integrates_to_one_and_weights_are_respected(k: int, std: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    centers = torch.rand(k, 2, generator=gen, dtype=torch.float64) * 4 - 2
    weights = torch.rand(k, generator=gen, dtype=torch.float64) + 0.1
    dist = make_distribution("mixture", centers=centers.tolist(), std=std, weights=weights.tolist())
    assert grid_integral(dist, 2 + 7 * std, cells=400) == pytest.approx(1.0, abs=1e-3)
    torch.testing.assert_close(dist.weights, (weights / weights.sum()).float())


def test_mixture_sample_frequencies_follow_the_weights() -> None:
    dist = make_distribution("mixture", centers=[[-5, 0], [0, 0], [5, 0]], std=0.1, weights=[1, 2, 5])
    points = draw("mixture", 40_000, 1, centers=[[-5, 0], [0, 0], [5, 0]], std=0.1, weights=[1, 2, 5])
    nearest = torch.cdist(points, dist.modes).argmin(dim=1)
    frequencies = torch.bincount(nearest, minlength=3).double() / len(points)
    torch.testing.assert_close(frequencies, torch.tensor([1, 2, 5], dtype=torch.float64) / 8, atol=0.01, rtol=0)


@FAST
@given(grid_size=st.integers(1, 7), scale=scales, seed=seeds)
def test_checkerboard_lands_only_in_active_cells(grid_size: int, scale: float, seed: int) -> None:
    dist = make_distribution("checkerboard", grid_size=grid_size, scale=scale)
    points = dist.sample(500, generator=torch.Generator().manual_seed(seed)).double()
    cell = torch.floor((points + scale) / (2 * scale / grid_size)).clamp(0, grid_size - 1)
    assert (points.abs() <= scale * (1 + 1e-6)).all()
    assert (cell.sum(dim=1) % 2 == 0).all()
    assert torch.isfinite(dist.log_prob(points.float())).all()


@pytest.mark.parametrize("name,params", [("checkerboard", {"grid_size": 3, "scale": 5.0}),
                                         ("checkerboard", {"grid_size": 4, "scale": 2.0}), ("checkerboard4", {})])
def test_checkerboard_density_integrates_to_one_and_covers_active_cells_evenly(name: str, params: dict) -> None:
    dist = make_distribution(name, **params)
    assert grid_integral(dist, dist.scale + 1) == pytest.approx(1.0, abs=1e-2)
    points = dist.sample(40_000, generator=torch.Generator().manual_seed(0))
    cells = dist.cell_index(points)
    counts = torch.bincount(cells[:, 1] * dist.grid_size + cells[:, 0], minlength=dist.grid_size**2)
    active = counts[counts > 0].double()
    assert len(active) == len(dist.active_cells)
    assert (active / active.mean() - 1).abs().max() < 0.1


def test_checkerboard4_matches_metas_flow_matching_example() -> None:
    """The generator of facebookresearch/flow_matching's 2D examples, written out with a seeded generator."""
    gen, n = torch.Generator().manual_seed(0), 20_000
    x1 = torch.rand(n, generator=gen) * 4 - 2
    x2_ = torch.rand(n, generator=gen) - torch.randint(high=2, size=(n,), generator=gen) * 2
    x2 = x2_ + (torch.floor(x1) % 2)
    reference = torch.cat([x1[:, None], x2[:, None]], dim=1) / 0.45
    dist = make_distribution("checkerboard4")
    assert torch.isfinite(dist.log_prob(reference)).all()
    assert dist.bounds == ((-2 / 0.45, -2 / 0.45), (2 / 0.45, 2 / 0.45))


@FAST
@given(noise=st.floats(0, 0.2), scale=scales, offset=offsets, n=st.integers(1, 400), seed=seeds)
def test_moons_stay_in_their_box_up_to_noise(noise: float, scale: float, offset: tuple[float, float], n: int,
                                            seed: int) -> None:
    points = draw("moons", n, seed, noise=noise, scale=scale, offset=offset).double()
    raw = (points - torch.tensor(offset, dtype=torch.float64)) / scale
    margin = 6 * noise + 1e-4
    assert (raw[:, 0] >= -1 - margin).all() and (raw[:, 0] <= 2 + margin).all()
    assert (raw[:, 1] >= -0.5 - margin).all() and (raw[:, 1] <= 1 + margin).all()


def on_moon_curves(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of points on scikit-learn's outer and inner moon arcs."""
    x, y = raw[:, 0], raw[:, 1]
    outer = np.isclose(x**2 + y**2, 1, atol=1e-5) & (y >= -1e-6)
    inner = np.isclose((1 - x) ** 2 + (0.5 - y) ** 2, 1, atol=1e-5) & (y <= 0.5 + 1e-6)
    return outer, inner


def test_noise_free_moons_lie_on_sklearns_arcs_in_sklearns_proportions() -> None:
    reference, _ = make_moons(1001, noise=0.0)
    assert all(mask.sum() > 0 for mask in on_moon_curves(reference))
    points = draw("moons", 1001, 0, noise=0.0, scale=5.0, offset=(1.0, -2.0)).double().numpy()
    outer, inner = on_moon_curves((points - [1.0, -2.0]) / 5.0)
    assert (outer | inner).all() and outer.sum() == 500 and (inner & ~outer).sum() == 501


def test_noise_free_circles_match_sklearns_radii_and_split() -> None:
    reference, _ = make_circles(1001, noise=0.0, factor=0.3)
    points = draw("circles", 1001, 0, noise=0.0, factor=0.3, scale=2.0, offset=(-1.0, 1.0)).double()
    radii = ((points - torch.tensor([-1.0, 1.0], dtype=torch.float64)) / 2.0).norm(dim=1).numpy()
    ref_radii = np.linalg.norm(reference, axis=1)
    for r in (1.0, 0.3):
        assert np.isclose(radii, r, atol=1e-5).sum() == np.isclose(ref_radii, r, atol=1e-5).sum()
    assert np.isclose(radii, 1.0, atol=1e-5).sum() + np.isclose(radii, 0.3, atol=1e-5).sum() == 1001


def test_failed_projects_data_is_expressible() -> None:
    moons = draw("moons", 5000, 0, noise=0.05, scale=5)
    circles = draw("circles", 5000, 0, noise=0.05, factor=0.5, scale=5)
    reference_moons, _ = make_moons(5000, noise=0.05, random_state=0)
    reference_circles, _ = make_circles(5000, noise=0.05, factor=0.5, random_state=0)
    for ours, theirs in ((moons, reference_moons * 5), (circles, reference_circles * 5)):
        np.testing.assert_allclose(ours.double().mean(0).numpy(), theirs.mean(0), atol=0.15)
        np.testing.assert_allclose(ours.double().std(0).numpy(), theirs.std(0), rtol=0.05)
    board = make_distribution("checkerboard", grid_size=3, scale=5)
    assert len(board.active_cells) == 5 and board.bounds == ((-5, -5), (5, 5))


@FAST
@given(noise=st.floats(0, 0.5), scale=scales, seed=seeds)
def test_swissroll_is_sklearns_xz_projection(noise: float, scale: float, seed: int) -> None:
    points = draw("swissroll", 300, seed, noise=0.0, scale=scale).double() / scale
    t = points.norm(dim=1)
    assert (t >= 1.5 * math.pi - 1e-4).all() and (t <= 4.5 * math.pi + 1e-4).all()
    torch.testing.assert_close(points, torch.stack([t * t.cos(), t * t.sin()], dim=1), atol=1e-4, rtol=1e-4)
    noisy = draw("swissroll", 300, seed, noise=noise, scale=scale).double() / scale
    assert ((noisy - points).norm(dim=1) <= 8 * noise + 1e-4).all()


@pytest.mark.parametrize("name,params,argument", [
    ("moons", {"scale": 0}, "scale"), ("moons", {"scale": -1.0}, "scale"), ("moons", {"noise": -0.1}, "noise"),
    ("moons", {"offset": (0.0, float("nan"))}, "offset"), ("circles", {"factor": 1.5}, "factor"),
    ("circles", {"offset": (1.0, 2.0, 3.0)}, "offset"), ("checkerboard", {"grid_size": 0}, "grid_size"),
    ("checkerboard", {"scale": float("inf")}, "scale"), ("ring", {"n_modes": 0}, "n_modes"),
    ("ring", {"std": 0}, "std"), ("grid", {"spacing": -2}, "spacing"),
    ("gaussian", {"cov": [[1, 2], [2, 1]]}, "cov"), ("gaussian", {"cov": [[1, 0], [0.5, 1]]}, "cov"),
    ("gaussian", {"mean": [0, 0, 0]}, "mean"), ("mixture", {"centers": []}, "centers"),
    ("mixture", {"weights": [1, -1]}, "weights"), ("mixture", {"weights": [1, 1, 1]}, "weights"),
    ("moons", {"nois": 0.1}, "nois"), ("swissroll", {"factor": 0.5}, "factor"),
])
def test_bad_parameters_name_the_argument(name: str, params: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=f"'{argument}'"):
        make_distribution(name, **params)


def test_unknown_name_and_bad_sample_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="'moon'.*moons"):
        make_distribution("moon")
    dist = make_distribution("moons")
    for n in (-1, 2.5, True):
        with pytest.raises(ValueError, match="'n'"):
            dist.sample(n)
    with pytest.raises(ValueError, match="'x'"):
        make_distribution("ring").log_prob(torch.zeros(4, 3))

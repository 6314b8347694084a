"""The exact marginal velocity field: agrees with the closed form, streams in bounded chunks, and transports
standard normal noise onto the data points."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_exact_field import peak_allocated_bytes
from gendiag.flow import exact_velocity, principal_plane
from gendiag.flow.projection import bounding_box, grid


def direct_field(x: torch.Tensor, t: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """The formula written out with one full (Q, M) softmax, in float64."""
    x, t, data = x.double(), t.double(), data.double()
    distances = ((x[:, None, :] - t[:, None, None] * data[None]) ** 2).sum(-1)
    weights = torch.softmax(-distances / (2 * (1 - t[:, None]) ** 2), dim=1)
    return (weights[:, :, None] * (data[None] - x[:, None, :])).sum(1) / (1 - t[:, None])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), dim=st.integers(1, 6), queries=st.integers(1, 40), points=st.integers(1, 60),
       chunk=st.integers(1, 17), data_chunk=st.integers(1, 23))
def test_chunked_streaming_equals_the_direct_formula(seed: int, dim: int, queries: int, points: int, chunk: int,
                                                    data_chunk: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    data = 3 * torch.randn(points, dim, generator=gen, dtype=torch.float64)
    x = 2 * torch.randn(queries, dim, generator=gen, dtype=torch.float64)
    t = torch.rand(queries, generator=gen, dtype=torch.float64) * 0.98
    got = exact_velocity(x, t, data, chunk=chunk, data_chunk=data_chunk)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, direct_field(x, t, data), rtol=1e-9, atol=1e-9)


def test_float32_inputs_with_float64_compute_match_the_formula_near_t_one() -> None:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(500, 3, generator=gen)
    x = torch.randn(64, 3, generator=gen)
    t = torch.full((64,), 0.99)
    got = exact_velocity(x, t, data, chunk=16, data_chunk=100, dtype=torch.float64)
    torch.testing.assert_close(got, direct_field(x, t, data), rtol=1e-8, atol=1e-8)
    single = exact_velocity(x, 0.99, data, chunk=16, data_chunk=100)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), got, rtol=1e-3, atol=1e-3)


def test_at_t_zero_the_field_points_to_the_data_mean() -> None:
    gen = torch.Generator().manual_seed(1)
    data = torch.randn(300, 4, generator=gen, dtype=torch.float64) + 2
    x = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(exact_velocity(x, 0.0, data), data.mean(0) - x)


def test_one_data_point_gives_the_conditional_velocity() -> None:
    point = torch.tensor([[1.5, -2.0]], dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 0.5, 0.8, 0.95], dtype=torch.float64)
    torch.testing.assert_close(exact_velocity(x, t, point), (point - x) / (1 - t[:, None]))


def test_mean_field_over_the_marginal_equals_mean_displacement() -> None:
    """E over x_t of u(x_t, t) = E[x1] - E[x0] = mean of the data: a property of the marginal field."""
    gen = torch.Generator().manual_seed(2)
    data = torch.randn(200, 2, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 0.5]) + torch.tensor([3.0, -1.0])
    n = 20_000
    x1 = data[torch.randint(0, 200, (n,), generator=gen)]
    x0 = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    for t in (0.2, 0.6, 0.9):
        field = exact_velocity(t * x1 + (1 - t) * x0, t, data)
        torch.testing.assert_close(field.mean(0), data.mean(0), atol=0.05, rtol=0)


def test_euler_on_the_exact_field_lands_on_the_data_points() -> None:
    gen = torch.Generator().manual_seed(3)
    data = torch.randn(50, 2, generator=gen, dtype=torch.float64) * 3
    x = torch.randn(400, 2, generator=gen, dtype=torch.float64)
    steps = 200
    for k in range(steps):
        x = x + exact_velocity(x, k / steps, data) / steps
    nearest = torch.cdist(x, data).amin(1)
    assert float(nearest.max()) < 0.05 * float(torch.cdist(data, data).max())


def test_times_near_one_are_clipped_with_a_warning() -> None:
    data = torch.randn(20, 2, dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64)
    with pytest.warns(UserWarning, match="clipped"):
        at_one = exact_velocity(x, 1.0, data, eps=1e-3)
    assert torch.isfinite(at_one).all()
    torch.testing.assert_close(at_one, exact_velocity(x, 1 - 1e-3, data, eps=1e-3))


def test_bad_inputs_fail_with_one_clear_line() -> None:
    data = torch.randn(10, 3)
    with pytest.raises(ValueError, match="x has 2 features but data has 3"):
        exact_velocity(torch.randn(4, 2), 0.5, data)
    with pytest.raises(ValueError, match="one time per query"):
        exact_velocity(torch.randn(4, 3), torch.rand(5), data)
    with pytest.raises(ValueError, match="data is empty"):
        exact_velocity(torch.randn(4, 3), 0.5, data[:0])
    with pytest.raises(ValueError, match="must be 2-D"):
        exact_velocity(torch.randn(4, 3, 1), 0.5, data)
    with pytest.raises(ValueError, match=">= 0"):
        exact_velocity(torch.randn(4, 3), -0.1, data)


def test_memory_is_bounded_by_the_chunks_not_by_queries_times_points() -> None:
    """Q × M = 2,000 × 4,000 float64 logits would be 61 MiB; the chunked pass holds a few 256 × 512 blocks."""
    gen = torch.Generator().manual_seed(4)
    data = torch.randn(4_000, 2, generator=gen, dtype=torch.float64)
    x = torch.randn(2_000, 2, generator=gen, dtype=torch.float64)
    peak = peak_allocated_bytes(lambda: exact_velocity(x, 0.5, data, chunk=256, data_chunk=512))
    assert 0 < peak < 8 * 2**20


def test_principal_plane_recovers_a_plane_and_keeps_2d_axes() -> None:
    gen = torch.Generator().manual_seed(5)
    coords = torch.randn(300, 2, generator=gen, dtype=torch.float64) * torch.tensor([3.0, 1.0])
    basis = torch.linalg.qr(torch.randn(10, 2, generator=gen, dtype=torch.float64))[0].T
    data = coords @ basis + 5
    plane = principal_plane(data)
    assert plane.explained[0] > 0.85 and abs(sum(plane.explained) - 1) < 1e-9
    torch.testing.assert_close(plane.lift(plane.project(data)), data)
    flat = principal_plane(coords)
    assert flat.identity and torch.equal(flat.project(coords), coords)
    box = bounding_box(flat.project(coords), margin=0.0)
    assert box[0] == float(coords[:, 0].min()) and box[3] == float(coords[:, 1].max())
    assert grid(box, 7).shape == (49, 2)

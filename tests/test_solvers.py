"""The ODE samplers on Gaussian-to-Gaussian flow matching, where the marginal flow is closed form: Euler's error
shrinks linearly with the step, Heun's quadratically, the adaptive solver matches the exact answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_models.solvers import adaptive, euler, heun

MU = torch.tensor([2.0, -1.0], dtype=torch.float64)
SIGMA = 0.3


def spread(t: torch.Tensor) -> torch.Tensor:
    """Std of p_t on the linear path from N(0, I) to N(MU, SIGMA² I): s(t) = √((1 − t)² + t²σ²)."""
    return torch.sqrt((1 - t) ** 2 + (t * SIGMA) ** 2)


def marginal_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """u(x, t) = MU + s'(t)/s(t)·(x − t·MU), the exact marginal field, whose flow maps x0 to MU + σ·x0."""
    t = t.reshape(-1, 1)
    s = spread(t)
    ds = (-(1 - t) + t * SIGMA**2) / s
    return MU + ds / s * (x - t * MU)


@pytest.fixture
def start() -> torch.Tensor:
    return torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def order_of_convergence(solver, start: torch.Tensor, steps: list[int]) -> float:
    exact = MU + SIGMA * start
    errors = [float((solver(marginal_velocity, start, n) - exact).abs().max()) for n in steps]
    slope = np.polyfit(np.log(1 / np.array(steps)), np.log(errors), 1)[0]
    return float(slope)


def test_euler_is_first_order(start: torch.Tensor) -> None:
    assert order_of_convergence(euler, start, [20, 40, 80, 160]) == pytest.approx(1.0, abs=0.1)


def test_heun_is_second_order(start: torch.Tensor) -> None:
    assert order_of_convergence(heun, start, [20, 40, 80, 160]) == pytest.approx(2.0, abs=0.1)


def test_adaptive_matches_the_exact_flow(start: torch.Tensor) -> None:
    result = adaptive(marginal_velocity, start, rtol=1e-9, atol=1e-10)
    assert torch.allclose(result, MU + SIGMA * start, atol=1e-7)


def test_solvers_reject_bad_arguments(start: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="steps must be >= 1"):
        euler(marginal_velocity, start, 0)
    with pytest.raises(ValueError, match="need t0 < t1"):
        heun(marginal_velocity, start, 10, t0=1.0, t1=0.5)

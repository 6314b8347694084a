"""ODE samplers for a velocity field u(x, t) from t = 0 to t = 1, each integrating the whole batch at once.

`field(x, t)` takes states (B, ...) and times (B,) and returns velocities of the states' shape."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(x0: torch.Tensor, steps: int, t0: float, t1: float) -> None:
    if steps < 1:
        raise ValueError(f"solver: steps must be >= 1, got {steps}")
    if not t0 < t1:
        raise ValueError(f"solver: need t0 < t1, got t0={t0}, t1={t1}")
    if x0.dim() < 1 or x0.shape[0] == 0:
        raise ValueError(f"solver: x0 must be a non-empty batch, got shape {tuple(x0.shape)}")


@torch.no_grad()
def euler(field: VelocityField, x0: torch.Tensor, steps: int = 100, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """Explicit Euler with `steps` equal steps: x ← x + h·u(x, t). Global error O(h)."""
    _check(x0, steps, t0, t1)
    h = (t1 - t0) / steps
    x = x0.clone()
    for k in range(steps):
        t = torch.full((x.shape[0],), t0 + k * h, dtype=x.dtype, device=x.device)
        x = x + h * field(x, t)
    return x


@torch.no_grad()
def heun(field: VelocityField, x0: torch.Tensor, steps: int = 50, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """Heun's method (explicit trapezoid): an Euler predictor, then the average of both slopes. Global error O(h²)."""
    _check(x0, steps, t0, t1)
    h = (t1 - t0) / steps
    x = x0.clone()
    for k in range(steps):
        t = torch.full((x.shape[0],), t0 + k * h, dtype=x.dtype, device=x.device)
        slope = field(x, t)
        predicted = x + h * slope
        x = x + 0.5 * h * (slope + field(predicted, t + h))
    return x


@torch.no_grad()
def adaptive(field: VelocityField, x0: torch.Tensor, t0: float = 0.0, t1: float = 1.0, rtol: float = 1e-5,
             atol: float = 1e-6, method: str = "RK45") -> torch.Tensor:
    """Reference solution with scipy's adaptive `solve_ivp`, the whole batch integrated as one system (never
    point by point); returns the states at t1 in x0's dtype."""
    _check(x0, 1, t0, t1)
    shape, dtype = x0.shape, x0.dtype

    def rhs(t: float, flat: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(flat).reshape(shape).to(dtype)
        velocity = field(x, torch.full((shape[0],), t, dtype=dtype))
        return velocity.double().reshape(-1).numpy()

    solution = solve_ivp(rhs, (t0, t1), x0.double().reshape(-1).numpy(), method=method, rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"adaptive solver: solve_ivp failed: {solution.message}")
    return torch.from_numpy(solution.y[:, -1]).reshape(shape).to(dtype)


SOLVERS = {"euler": euler, "heun": heun}

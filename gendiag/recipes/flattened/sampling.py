"""The original's sampler: Euler over equal time points, and the rewrite's frozen variant."""

from __future__ import annotations

from typing import Callable

import torch

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def euler_time_points(field: VelocityField, x0: torch.Tensor, time_points: int = 100,
                      frozen: bool = False) -> torch.Tensor:
    """Euler over `time_points` equal time points from 0 to 1 (time_points − 1 steps), as the original sampled.

    frozen=True is the rewrite's bug: each step's result is assigned to a new variable, so the state never moves
    and the start image comes back."""
    if time_points < 2:
        raise ValueError(f"euler_time_points: time_points must be >= 2, got {time_points}")
    times = torch.linspace(0.0, 1.0, time_points)
    x = x0.clone()
    for k in range(time_points - 1):
        t = float(times[k])
        step = (times[k + 1] - times[k]).item() * field(x, torch.full((x.shape[0],), t, dtype=x.dtype))
        if frozen:
            moved = x + step  # noqa: F841  (the rewrite's bug, kept: the result never reaches x)
        else:
            x = x + step
    return x

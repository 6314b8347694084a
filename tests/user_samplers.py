"""Samplers as a user writes them in a file of their own, each correct or with one fault, for `gendiag
check-sampler FILE.py:NAME` (its tests and its benchmark) and for `gendiag.testing`'s tests."""

import torch


def euler(velocity_fn, x0, steps):
    x, dt = x0.clone(), 1.0 / steps
    for i in range(steps):
        x = x + dt * velocity_fn(x, i * dt)
    return x


def frozen(velocity_fn, x0, steps):
    x, dt = x0.clone(), 1.0 / steps
    for i in range(steps):
        x_new = x + dt * velocity_fn(x, i * dt)  # noqa: F841  (the fault: the result never reaches x)
    return x


def backwards(velocity_fn, x0, steps):
    x, dt = x0.clone(), 1.0 / steps
    for i in range(steps):
        x = x - dt * velocity_fn(x, 1.0 - i * dt)
    return x


def two_arguments(velocity_fn, x0):
    return x0


def raises(velocity_fn, x0, steps):
    raise RuntimeError("the model is not loaded")


def first_row(velocity_fn, x0, steps):
    return euler(velocity_fn, x0, steps)[:1]


def ddim_over_T(eps_fn, x, betas, steps):
    """DDIM passing t/T, as a network trained on t in [0, 1) expects."""
    T = len(betas)
    abar = torch.cumprod(1 - betas, dim=0)
    visited = list(range(0, T, T // steps))[::-1]
    for i, t in enumerate(visited):
        prev = abar[visited[i + 1]] if i + 1 < len(visited) else torch.tensor(1.0, dtype=torch.float64)
        eps = eps_fn(x, torch.full((x.shape[0],), t / T))
        x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        x = (prev.sqrt() * x0 + (1 - prev).sqrt() * eps).float()
    return x

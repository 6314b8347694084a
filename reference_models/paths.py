"""Probability paths x_t = α_t·x1 + β_t·x0 from a source x0 (t = 0) to data x1 (t = 1), as in Meta's
`flow_matching` package and the MIT flow-matching lab: a path knows its schedule and its derivatives, so the
conditional velocity target and the interpolant come from one place."""

from __future__ import annotations

import torch


class AffinePath:
    """x_t = α_t·x1 + β_t·x0; the conditional velocity is α̇_t·x1 + β̇_t·x0.

    Written in terms of x_t instead of x0 it is (α̇ − β̇/β·α)·x1 + β̇/β·x_t, the form the failed flattened project used.
    """

    name = "affine"
    t_max = 1.0

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define alpha(t)")

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define beta(t)")

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define d_alpha(t)")

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define d_beta(t)")

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = _column(t, x1)
        return self.alpha(t) * x1 + self.beta(t) * x0

    def velocity(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = _column(t, x1)
        return self.d_alpha(t) * x1 + self.d_beta(t) * x0


class LinearPath(AffinePath):
    """The conditional optimal-transport path: α_t = t, β_t = 1 − t, target x1 − x0 (constant in t)."""

    name = "linear"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - t

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.ones_like(t)


class SqrtPath(AffinePath):
    """The MIT flow-matching lab's path α_t = t, β_t = √(1 − t). β̇ = −1/(2√(1 − t)) is unbounded at t = 1, so
    training draws t from [0, t_max) with t_max = 0.999 (the target's size stays below ~16·|x0|)."""

    name = "sqrt"
    t_max = 0.999

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1 - t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 / torch.sqrt(1 - t)


PATHS: dict[str, type[AffinePath]] = {"linear": LinearPath, "sqrt": SqrtPath}


def _column(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Times of shape (B,) broadcast against a batch of shape (B, ...)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1)))

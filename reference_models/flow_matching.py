"""Conditional flow matching: regress u_θ(x_t, t) on the path's conditional velocity, t ~ U[0, t_max).

Kept apart from the paths, the networks and the solvers, so each can be swapped (as in Meta's `flow_matching`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reference_models.paths import AffinePath


@dataclass
class FlowBatch:
    """One training batch's loss, and what the Monitor's loss-by-t probe needs (times, per-sample losses)."""

    loss: torch.Tensor
    t: torch.Tensor
    per_sample_loss: torch.Tensor
    xt: torch.Tensor
    target: torch.Tensor


def flow_matching_loss(model: nn.Module, x0: torch.Tensor, x1: torch.Tensor, path: AffinePath,
                       generator: torch.Generator | None = None) -> FlowBatch:
    """Mean squared error between u_θ(x_t, t) and the conditional velocity, summed over features, averaged over
    the batch. `x0` is the source batch, `x1` the data batch, of one shape."""
    if x0.shape != x1.shape:
        raise ValueError(f"flow_matching_loss: x0 and x1 must have one shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    t = torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype) * path.t_max
    t = t.to(x1.device)
    xt = path.interpolate(x0, x1, t)
    target = path.velocity(x0, x1, t)
    per_sample = (model(xt, t) - target).pow(2).flatten(1).sum(1)
    return FlowBatch(loss=per_sample.mean(), t=t, per_sample_loss=per_sample.detach(), xt=xt, target=target)

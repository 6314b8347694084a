"""The training loss: the original's buggy one and the correct flow-matching one."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gendiag.recipes.schemas.flattened import LossKind


@dataclass
class FlatBatch:
    loss: torch.Tensor
    per_sample_loss: torch.Tensor
    t: torch.Tensor
    inputs: torch.Tensor
    target: torch.Tensor


def flattened_loss(model: torch.nn.Module, x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor,
                   kind: LossKind) -> FlatBatch:
    """The per-sample squared error summed over pixels, averaged over the batch; z is the data picture, x0 the
    source picture.

    buggy_x0: u_θ(x0, t) against (z − x0)/(1 − t): the original, x0 where x_t belongs.
    correct:  u_θ(x_t, t) against (z − x_t)/(1 − t) = z − x0, with x_t = t·z + (1 − t)·x0."""
    if x0.shape != z.shape or x0.dim() != 2:
        raise ValueError(f"flattened_loss: x0 and z must be flat batches of one shape, got {tuple(x0.shape)} "
                         f"and {tuple(z.shape)}")
    column = t.reshape(-1, 1)
    if kind == "buggy_x0":
        inputs, target = x0, (z - x0) / (1 - column)
    elif kind == "correct":
        inputs, target = column * z + (1 - column) * x0, z - x0
    else:
        raise ValueError(f"flattened_loss: kind must be 'buggy_x0' or 'correct', got {kind!r}")
    per_sample = (model(inputs, t) - target).pow(2).sum(1)
    return FlatBatch(per_sample.mean(), per_sample.detach(), t, inputs, target)

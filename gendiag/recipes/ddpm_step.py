"""One DDPM training step, shared by the image and point-cloud recipes: set the learning rate, L_simple on a batch,
one optimizer step, then the weights' moving average where there is one."""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

from reference_models.ddpm import DiffusionBatch, Schedule, noise_prediction_loss


def ddpm_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x0: torch.Tensor, schedule: Schedule,
              lr: float, generator: torch.Generator, average: AveragedModel | None = None) -> DiffusionBatch:
    """Train `model` on the clean batch `x0` at learning rate `lr` (timesteps and noise drawn from `generator`);
    returns the batch's loss terms (loss, t, per-sample loss)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    batch = noise_prediction_loss(model, x0, schedule, generator=generator)
    optimizer.zero_grad(set_to_none=True)
    batch.loss.backward()
    optimizer.step()
    if average is not None:
        average.update_parameters(model)
    return batch

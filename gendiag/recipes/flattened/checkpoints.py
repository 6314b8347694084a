"""What the original looked at: pictures generated at checkpoint iterations, judged against one fixed target
picture and against the start pictures they were generated from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gendiag.quantities.flattened import binary_iou, cosine
from gendiag.recipes.flattened.sampling import euler_time_points
from gendiag.recipes.schemas.flattened import Sampling


@dataclass
class Checkpoint:
    iteration: int
    images: torch.Tensor
    cos_target: float
    cos_source: float
    iou_target: float
    iou_source: float


@dataclass
class Reference:
    """The fixed pictures the checkpoints are judged against: one target image and the start images."""

    target: torch.Tensor
    starts: torch.Tensor
    threshold: float

    def judge(self, iteration: int, images: torch.Tensor) -> Checkpoint:
        return Checkpoint(
            iteration, images,
            cos_target=float(cosine(images, self.target).mean()), cos_source=float(cosine(images, self.starts).mean()),
            iou_target=float(binary_iou(images, self.target, self.threshold).mean()),
            iou_source=float(binary_iou(images, self.starts, self.threshold).mean()))


def generate(mon: Any, model: torch.nn.Module, reference: Reference, sample_cfg: Sampling,
             iteration: int) -> Checkpoint:
    """Images from the fixed start pictures with the case's sampler, as the original looked at them."""
    was_training = model.training
    model.eval()
    with mon.sampling():
        images = euler_time_points(model, reference.starts, sample_cfg.time_points, sample_cfg.frozen)
    model.train(was_training)
    return reference.judge(iteration, images)

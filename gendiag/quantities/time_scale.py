"""Does the sampler pass the network t on the scale training did?

Loops mix two conventions for a diffusion's time: the integer step (0 .. T - 1, as diffusers' schedulers and
`scheduler.timesteps` have it) and the fraction step / T in [0, 1] (as flow matching and continuous-time code have
it). A network trained on one and sampled on the other meets times it never saw: every sampling call lies outside
the training range, or inside a sliver of it. Compared here: the largest time fed in training and in sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gendiag.rules.thresholds import INPUTS_TIME_SCALE_RATIO


@dataclass(frozen=True)
class TimeScaleGap:
    """The largest time fed in training and in sampling, and the factor between them (> 1 either way)."""

    train_max: float
    sampling_max: float
    factor: float
    schedule_steps: int | None

    @property
    def sampling_larger(self) -> bool:
        return self.sampling_max > self.train_max

    def describe(self) -> str:
        """One sentence naming the two scales, and which one is the schedule's when the schedule is known."""
        text = (f"Training fed the network t up to {self.train_max:.4g}, the sampler up to {self.sampling_max:.4g}: "
                f"the sampler's t is {self.factor:.3g} times {'larger' if self.sampling_larger else 'smaller'}.")
        if self.schedule_steps is not None:
            steps = self.schedule_steps
            on_steps = [side for side, top in (("training", self.train_max), ("sampling", self.sampling_max))
                        if top > 1.0 and top <= steps]
            if len(on_steps) == 1:
                other = "sampling" if on_steps[0] == "training" else "training"
                text += (f" The schedule has {steps} steps, so {on_steps[0]} passes the integer step (0 .. {steps - 1}) "
                         f"and {other} another scale (a fraction step / {steps} in [0, 1] when it stays below 1).")
        return text


def time_scale_gap(train_t: torch.Tensor, sampling_t: torch.Tensor, schedule: Any = None) -> TimeScaleGap | None:
    """The gap between the training and the sampling time scales, or None where they agree (or cannot be told:
    no times, or a side whose times are all 0 or negative)."""
    if train_t.numel() == 0 or sampling_t.numel() == 0:
        return None
    train_max, sampling_max = float(train_t.max()), float(sampling_t.max())
    if train_max <= 0 or sampling_max <= 0:
        return None
    factor = max(train_max, sampling_max) / min(train_max, sampling_max)
    if factor <= INPUTS_TIME_SCALE_RATIO:
        return None
    steps = len(schedule) if schedule is not None and hasattr(schedule, "__len__") else None
    return TimeScaleGap(train_max=train_max, sampling_max=sampling_max, factor=factor, schedule_steps=steps)

"""A VAE decoder's output range against the data's, and how low the loss goes (`OutputRanges`).

A decoder whose output passes through a sigmoid twice can only return values in [sigmoid(0), sigmoid(1)] =
[0.5, 0.731]. Targets outside [0, 1] given to a binary cross-entropy make its loss unbounded below: for a target y > 1
the term (1 - y)·log(1 - p) grows without bound as p → 1, for y < 0 the term y·log(p) as p → 0."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

SIGMOID_0 = 0.5
SIGMOID_1 = 1 / (1 + math.exp(-1))
MARGIN = 1e-3  # how far outside [0, 1] a data value must lie to count
KEPT_VALUES = 4096  # values of the latest samples and data batch kept for the figures


@dataclass
class Range:
    """The smallest and largest value seen and how many values."""

    low: float = math.inf
    high: float = -math.inf
    values: int = 0

    def add(self, batch: torch.Tensor) -> None:
        finite = batch[torch.isfinite(batch)]
        if finite.numel():
            self.low = min(self.low, float(finite.min()))
            self.high = max(self.high, float(finite.max()))
            self.values += finite.numel()

    def within(self, low: float, high: float) -> bool:
        return self.values > 0 and self.low >= low - 1e-6 and self.high <= high + 1e-6


@dataclass
class OutputRanges:
    """The range of the samples (the decoder's outputs on the prior); the data's range and its values outside
    [sigmoid(0), sigmoid(1)] and outside [0, 1]; the lowest loss (and reported `recon`) with its step; up to
    KEPT_VALUES values of the latest samples and of the latest data batch (`kept_samples`, `kept_data`: copies on
    the batch's device, read only where a figure is drawn)."""

    samples: Range = field(default_factory=Range)
    data: Range = field(default_factory=Range)
    data_outside_squash: int = 0
    data_outside_unit: int = 0
    lowest: dict[str, tuple[float, int]] = field(default_factory=dict)
    kept_samples: torch.Tensor | None = None
    kept_data: torch.Tensor | None = None

    def add_samples(self, batch: torch.Tensor) -> None:
        values = batch.detach().float()
        self.samples.add(values)
        self.kept_samples = spread(values)

    def add_data(self, batch: torch.Tensor) -> None:
        values = batch.detach().float()
        self.data.add(values)
        self.kept_data = spread(values)
        self.data_outside_squash += int(((values < SIGMOID_0) | (values > SIGMOID_1)).sum())
        self.data_outside_unit += int(((values < -MARGIN) | (values > 1 + MARGIN)).sum())

    def add_loss(self, name: str, value: float, step: int) -> None:
        if math.isfinite(value) and (name not in self.lowest or value < self.lowest[name][0]):
            self.lowest[name] = (value, step)

    def share_outside_squash(self) -> float:
        return self.data_outside_squash / self.data.values if self.data.values else 0.0

    def share_outside_unit(self) -> float:
        return self.data_outside_unit / self.data.values if self.data.values else 0.0


def spread(values: torch.Tensor, count: int = KEPT_VALUES) -> torch.Tensor:
    """At most `count` of the tensor's values, evenly spaced over it, copied on its device (nothing read back)."""
    flat = values.reshape(-1)
    return flat[::max(1, -(-flat.numel() // count))].clone()

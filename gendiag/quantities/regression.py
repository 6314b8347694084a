"""Does a regression network's output depend on its input? Per training call of a watched network, the variance of
its output across the recorded rows, per element (`OutputSpread`), set against the loss the loop reports.

A network whose target does not depend on what it sees (the noise in a noise-prediction target drawn apart from the
noise in x_t) can do no better than the target's mean: its output is the same for every row, and its loss stays at
the target's variance, 1 per element for N(0, I) noise."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class OutputSpread:
    """The output's variance across rows, per element, of each training call of one network, with its step, and
    the loss of each reported step."""

    def __init__(self) -> None:
        self.model: str | None = None
        self.elements = 0
        self.spread: list[tuple[int, float]] = []
        self.losses: list[tuple[int, float]] = []

    def add_call(self, model: str, step: int, output: torch.Tensor) -> None:
        if self.model is None:
            self.model = model
        if model != self.model or output.shape[0] < 2:
            return
        flat = output.reshape(output.shape[0], -1).double()
        self.elements = flat.shape[1]
        self.spread.append((step, float(flat.var(0).mean())))

    def add_loss(self, step: int, loss: float) -> None:
        if np.isfinite(loss):
            self.losses.append((step, loss))


def late_summary(spread: OutputSpread) -> dict[str, Any] | None:
    """Over the last quarter of the reported steps: the median output spread per element, the median loss, the
    elements per row and the steps; None before any step, call or loss."""
    if not spread.spread or not spread.losses:
        return None
    last = spread.losses[-1][0]
    first = spread.losses[0][0]
    since = last - (last - first) // 4
    outputs = [value for step, value in spread.spread if step >= since]
    losses = [value for step, value in spread.losses if step >= since]
    if not outputs or not losses:
        return None
    return {"model": spread.model, "since_step": since, "last_step": last, "steps": last - first + 1,
            "output_spread": float(np.median(outputs)), "loss": float(np.median(losses)),
            "elements": spread.elements, "calls": len(outputs)}

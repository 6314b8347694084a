"""What the optimizer does to the weights over the run: each watched optimizer's learning rate step by step (the
largest over its parameter groups, read from `param_groups`), and the norm of the trained networks' weights on a
thinning stride of steps, beside the loss at the same steps.

`lr_fall` finds where a learning rate fell below a fraction of its peak and how much of the run it spent there;
`weight_shrink` finds how far the weights' norm fell from its peak and how the loss moved over that fall."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class LrSeries:
    """One learning rate over the run: `label` names its optimizer ("Adam #1") or "lr given to mon.step"."""

    label: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    weight_decay: float | None = None

    def add(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)


def optimizer_lr(optimizer: torch.optim.Optimizer) -> float:
    """The largest learning rate over the optimizer's parameter groups (a tensor lr read as a number)."""
    return max(float(group["lr"]) for group in optimizer.param_groups)


def optimizer_weight_decay(optimizer: torch.optim.Optimizer) -> float:
    """The largest weight decay over the optimizer's parameter groups (0 where the groups have none)."""
    return max(float(group.get("weight_decay", 0.0) or 0.0) for group in optimizer.param_groups)


def lr_fall(series: LrSeries, fraction: float) -> dict[str, Any] | None:
    """Where the learning rate, after its peak, first fell below `fraction` of the peak; the share of the run (from
    its first reading to its last, in steps) left after that step and the share spent below. None before two
    readings or without a positive peak."""
    if len(series.values) < 2:
        return None
    values, steps = np.asarray(series.values, dtype=float), np.asarray(series.steps, dtype=float)
    finite = np.isfinite(values)
    if not finite.any() or np.nanmax(np.where(finite, values, np.nan)) <= 0:
        return None
    peak_at = int(np.nanargmax(np.where(finite, values, np.nan)))
    peak = float(values[peak_at])
    span = float(steps[-1] - steps[0]) or 1.0
    below = finite & (values < fraction * peak)
    below[:peak_at] = False
    durations = np.diff(steps, append=steps[-1])  # each reading stands for the steps until the next
    result = {"label": series.label, "peak": peak, "peak_step": int(steps[peak_at]), "last": float(values[-1]),
              "first_step": int(steps[0]), "last_step": int(steps[-1]), "readings": len(values),
              "first_below_step": None, "share_left": 0.0, "share_below": float(durations[below].sum() / span)}
    if below.any():
        first = int(np.argmax(below))
        result["first_below_step"] = int(steps[first])
        result["share_left"] = float((steps[-1] - steps[first]) / span)
    return result


class WeightTrace:
    """The global norm of a set of weights and the loss, at chosen steps. A norm is reduced on the weights' device
    at its step and read with the others at `settle` (a flush), so that reading it never makes a step wait."""

    def __init__(self) -> None:
        self.params: list[torch.Tensor] = []
        self.steps: list[int] = []
        self.norms: list[float] = []
        self.losses: list[float] = []
        self._unread: list[tuple[int, torch.Tensor]] = []
        self._loss_at: dict[int, float] = {}

    def watch(self, module: torch.nn.Module) -> None:
        seen = {id(p) for p in self.params}
        self.params += [p for p in module.parameters() if p.requires_grad and id(p) not in seen]

    def read(self, step: int) -> None:
        """The weights' global norm now: one reduction on their device, kept there until `settle`."""
        if not self.params:
            return
        with torch.no_grad():
            norms = torch._foreach_norm([p.detach() for p in self.params])
            total = torch.stack([n.double().to(norms[0].device) for n in norms]).pow(2).sum().sqrt()
        self._unread.append((step, total))

    def note_loss(self, step: int, loss: float | None) -> None:
        """The loss of a step whose norm was read (NaN without one)."""
        if any(step == unread for unread, _ in self._unread):
            self._loss_at[step] = float("nan") if loss is None else loss

    def settle(self) -> None:
        """Read the norms kept since the last settle, in one copy, beside their steps' losses."""
        if not self._unread:
            return
        values = torch.stack([norm.to(self._unread[0][1].device) for _, norm in self._unread]).tolist()
        for (step, _), value in zip(self._unread, values):
            self.steps.append(step)
            self.norms.append(value)
            self.losses.append(self._loss_at.pop(step, float("nan")))
        self._unread = []


def weight_shrink(trace: WeightTrace) -> dict[str, Any] | None:
    """How far the weights' norm fell from its peak to the end (the median of the last tenth of the readings), and
    the loss at the peak against the loss at the end (medians of a tenth of the readings from the peak, and of the
    last tenth). Readings whose norm is not finite (weights that overflowed) are left out. None with fewer than ten
    finite readings, or without finite losses at either end."""
    finite = np.isfinite(np.asarray(trace.norms, dtype=float))
    if finite.sum() < 10:
        return None
    norms, losses = np.asarray(trace.norms)[finite], np.asarray(trace.losses)[finite]
    steps = np.asarray(trace.steps)[finite]
    window = max(1, len(norms) // 10)
    peak_at = int(np.argmax(norms))
    end_norm = float(np.median(norms[-window:]))
    at_peak, at_end = losses[peak_at:peak_at + window], losses[-window:]
    at_peak, at_end = at_peak[np.isfinite(at_peak)], at_end[np.isfinite(at_end)]
    if norms[peak_at] <= 0 or not len(at_peak) or not len(at_end):
        return None
    loss_peak, loss_end = float(np.median(at_peak)), float(np.median(at_end))
    return {"peak_norm": float(norms[peak_at]), "peak_step": int(steps[peak_at]), "end_norm": end_norm,
            "last_step": int(steps[-1]), "shrink": 1.0 - end_norm / float(norms[peak_at]),
            "loss_at_peak": loss_peak, "loss_at_end": loss_end,
            "loss_improvement": (loss_peak - loss_end) / max(abs(loss_peak), 1e-12),
            "min_norm": float(np.min(norms[peak_at:])), "readings": len(norms)}

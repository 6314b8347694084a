"""The optimizer's effect over the run: the learning rate of each watched optimizer (read from its `param_groups`
at every `Monitor.step`, on a thinning stride; without a watched optimizer, the `lr=` scalar given to
`Monitor.step`) and the norm of the trained networks' weights beside the loss (`gendiag.quantities.optimizer`).

Findings (`gendiag.rules.optimizer`):
- `lr-decayed-to-zero`: the learning rate spent a large part of the run at about 0 (below a thousandth of its
  peak), with the step it fell there and the share of the run left.
- `weight-decay-dominates`: the weights' norm fell steadily by a large part while the loss did not improve (not
  judged for GANs, whose losses do not measure progress).

Each finding's figure (`gendiag.figures.optimizer`) is drawn at `finish` only where the finding holds."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.context import ProbeContext
from gendiag.figures.optimizer import LR_CAPTION, WEIGHTS_CAPTION, lr_figure, weights_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.probes.thinning import LogStride
from gendiag.quantities.optimizer import (
    LrSeries, WeightTrace, lr_fall, optimizer_lr, optimizer_weight_decay, weight_shrink,
)
from gendiag.report.section import ProbeSection
from gendiag.rules.optimizer import lr_decayed, weight_decay_dominates
from gendiag.rules.thresholds import LR_ZERO_FRACTION

STEP_LR = "the lr given to mon.step"
LR_FIGURE = "optimizer_lr"
WEIGHTS_FIGURE = "optimizer_weights"


@register
class OptimizerProbe(Probe):
    """Learning rates and the weights' norm over the run; `lr-decayed-to-zero`, `weight-decay-dominates`."""

    name = "optimizer"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.optimizers: list[tuple[torch.optim.Optimizer, LrSeries]] = []
        self.step_lr = LrSeries(STEP_LR)
        self.weights = WeightTrace()
        self.lr_stride = LogStride(budget=500, first=1)
        self.weight_stride = LogStride(budget=200, first=5)

    def on_watch(self, ctx: ProbeContext, name: str, module: torch.nn.Module) -> None:
        if ctx.models[name].ema_of is None:
            self.weights.watch(module)

    def on_optimizer(self, ctx: ProbeContext, optimizer: torch.optim.Optimizer) -> None:
        label = f"{type(optimizer).__name__} #{len(self.optimizers) + 1}"
        self.optimizers.append((optimizer, LrSeries(label, weight_decay=optimizer_weight_decay(optimizer))))

    def at_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        """The watched optimizers' learning rates and the weights' norm as they are at this step (the schedule and
        the weights move on before the flush); the norm stays on the device until `on_flush`."""
        if self.optimizers and self.lr_stride.take(record.step):
            for optimizer, series in self.optimizers:
                series.add(record.step, optimizer_lr(optimizer))
        if self.weight_stride.take(record.step):
            self.weights.read(record.step)

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if not self.optimizers and "lr" in record.scalars and self.lr_stride.take(record.step):
            self.step_lr.add(record.step, record.scalars["lr"])
        self.weights.note_loss(record.step, record.loss)

    def on_flush(self, ctx: ProbeContext) -> None:
        self.weights.settle()

    def _series(self) -> list[LrSeries]:
        return [series for _, series in self.optimizers] if self.optimizers else [self.step_lr]

    def _weight_decay(self) -> float | None:
        decays = [series.weight_decay for _, series in self.optimizers if series.weight_decay is not None]
        return max(decays) if decays else None

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        lines = []
        for series in self._series():
            fall = lr_fall(series, LR_ZERO_FRACTION)
            if fall is not None:
                lines.append(f"{series.label}: learning rate peaked at {fall['peak']:.3g} (step {fall['peak_step']}) "
                             f"and ends at {fall['last']:.3g}; {fall['share_below']:.0%} of the run below "
                             f"{LR_ZERO_FRACTION:g} of the peak.")
        shrink = weight_shrink(self.weights)
        if shrink is not None:
            lines.append(f"Weights' norm: {shrink['peak_norm']:.4g} at its peak (step {shrink['peak_step']}), "
                         f"{shrink['end_norm']:.4g} at the end; the loss {shrink['loss_at_peak']:.4g} then, "
                         f"{shrink['loss_at_end']:.4g} at the end.")
        figures = []
        if self._lr_findings():
            figures.append(ctx.draw_figure(LR_FIGURE, lr_figure, self._series(), LR_ZERO_FRACTION,
                                           caption=LR_CAPTION))
        if self._weight_findings(ctx):
            figures.append(ctx.draw_figure(WEIGHTS_FIGURE, weights_figure, list(self.weights.steps),
                                           list(self.weights.norms), list(self.weights.losses), shrink,
                                           caption=WEIGHTS_CAPTION))
        if not lines:
            return None
        return ProbeSection(title="Learning rate and weight norm", text=" ".join(lines), figures=figures)

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        return self._lr_findings() + self._weight_findings(ctx)

    def _lr_findings(self) -> list[Finding]:
        return [finding for series in self._series()
                for finding in lr_decayed(lr_fall(series, LR_ZERO_FRACTION), f"figures/{LR_FIGURE}.png")]

    def _weight_findings(self, ctx: ProbeContext) -> list[Finding]:
        if ctx.task == "gan":
            return []
        return weight_decay_dominates(weight_shrink(self.weights), self._weight_decay(),
                                      f"figures/{WEIGHTS_FIGURE}.png")

    def state(self) -> dict[str, Any]:
        return {"lr": {series.label: lr_fall(series, LR_ZERO_FRACTION) for series in self._series()},
                "weights": weight_shrink(self.weights)}

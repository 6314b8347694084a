"""Gradients and updates of the watched networks: global and per-tensor gradient norms, the update-to-weight ratio
of a step, the gradient noise (how much two consecutive batch gradients differ against what they share), and
histograms of weights and gradients over the run on a thinning stride. The measurements are
`gendiag.quantities.gradients` (and `gradient_norms`), the rules `gendiag.rules.gradients`, the figure
`gendiag.figures.gradients`; this module hooks them to the Monitor and writes TensorBoard.

Cost per due step: one `torch._foreach_norm` over the gradients, its per-tensor norms written into one row of a
buffer allocated once on their device; every 64 due steps the buffer is copied to the CPU in one go into a history
of at most 2048 rows (when full it keeps every other row and halves its rate). Every 20 due steps the probe copies
the weights and gradients (memory: 2x the watched parameters, allocated once and reused) and at the next
`Monitor.step` measures the update ‖W_s - W_{s-1}‖ / ‖W_s‖ per tensor and the gradient difference. Histograms of
weights and gradients: a strided sample of 4096 values of each is taken at the first due step, then every 100 steps,
the interval doubling after every 20 histograms, and written to TensorBoard at the next `Monitor.step` (the final
weights by `finish`). Every gradient-norm row kept (the global norm and, up to 32 tensors, each tensor's), every
measured update ratio and noise-to-signal value goes to the sinks at the step it describes, so TensorBoard holds
the same points as the report's figure.

Where the gradients are read. With an optimizer under watch (`Monitor.watch(model, optimizer=opt)` or
`Monitor.watch_optimizer(opt)`), the gradients of the watched tensors that optimizer holds are read in its step
pre-hook, i.e. the gradients that step uses, and the update is measured in its post-hook: right whatever the order
of `zero_grad`, `step` and `Monitor.step`, with one reading per optimizer step under gradient accumulation, and
after GradScaler's unscaling (a step GradScaler skips calls no hook). Readings taken in hooks get the step of the
next `Monitor.step`. The other tensors are read at `Monitor.step`; a network whose gradients there are all missing
or exactly zero was not seen (a loop that clears them before `Monitor.step`): its norms are left out, not shown as
zeros. A one-shot hook on each parameter notes whether backward ever put a gradient into it (each hook is removed
at the first `Monitor.step` after its gradient arrived).

Findings, per watched network:
- `no-gradient-reaches` (critical): read at its optimizer's step, every gradient of a network was missing or
  exactly zero at every reading; read at `Monitor.step`, backward never put a gradient into any of its parameters
  and its weights never changed (a `.detach()` between it and its loss, `requires_grad=False`, an optimizer over
  other parameters).
- `params-stalled`: a network's weights never changed between two measurements (critical: the optimizer does not
  update them), or the median update-to-weight ratio of its weight matrices is below 1e-4 and, at that rate, the
  whole run moves them by less than 10% (warning; healthy training sits near 1e-3 per step, Adam with a learning
  rate of 1e-6 gives 1e-6 to 1e-4 depending on the layers' width). Not raised beside `no-gradient-reaches`.
- `gradients-not-seen` (info): backward did put gradients into a network, but read at `Monitor.step` they were
  missing or exactly zero at every reading (the loop clears them first); pass `optimizer=` to `watch`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.figures.gradients import GRADIENTS_CAPTION, gradients_figure, gradients_table, gradients_text
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection
from gendiag.quantities.gradients import GradientReadings, sample
from gendiag.rules.gradients import gradient_findings, judge_gradients

TB_LAYERS = 32  # per-tensor TensorBoard curves only up to this many tensors
TB_HISTOGRAM_LIMIT = 1e20  # TensorBoard's histogram buckets end here; NaN and inf fall outside too
FIGURE = "gradients"


@register
class GradientsProbe(Probe):
    """Gradient norms, update-to-weight ratios and gradient noise of the watched networks, read where the gradients
    exist; `params-stalled` per network, `no-gradient-reaches`, `gradients-not-seen`."""

    name = "gradients"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.readings = GradientReadings(every)
        self.arrival_hooks: dict[int, torch.utils.hooks.RemovableHandle] = {}
        self.logged_at: dict[str, int] = {}
        self.summary: dict[str, Any] = {}
        self.cached: tuple[tuple[int, int], dict[str, Any]] | None = None  # ((readings' changes, step), summary)
        self.scales: list[tuple[int, torch.Tensor]] = []  # GradScaler's scale after each step, on its device
        self.scale_before: float | None = None  # the scale before the first of them
        self.skipped: list[int] = []  # steps whose optimizer step GradScaler skipped (overflow)

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("grad", "gradient norms", ["grad/global_norm", "grad/norm/.*"])
        ctx.add_chart("grad", "update / weight per step", ["grad/update_ratio.*"])
        ctx.add_chart("grad", "gradient noise-to-signal", ["grad/noise_to_signal"])

    def _note_scale(self, ctx: ProbeContext) -> None:
        """The scaler's scale when it is given (a host read once, before the steps it judges)."""
        if ctx.scaler is not None and self.scale_before is None and ctx.scaler.is_enabled():
            self.scale_before = ctx.scaler.get_scale()

    def on_watch(self, ctx: ProbeContext, name: str, module: torch.nn.Module) -> None:
        watched = ctx.models.get(name)
        if watched is not None and watched.ema_of is not None:  # an EMA copy is averaged, not trained
            return
        self._note_scale(ctx)
        for index, param in self.readings.watch(name, module):
            self.arrival_hooks[index] = param.register_post_accumulate_grad_hook(self._arrival(index))

    def on_optimizer(self, ctx: ProbeContext, optimizer: torch.optim.Optimizer) -> None:
        self._note_scale(ctx)
        self.readings.add_optimizer(optimizer)

    def before_optimizer_step(self, ctx: ProbeContext, optimizer: torch.optim.Optimizer) -> None:
        self.readings.before_optimizer_step(optimizer)

    def after_optimizer_step(self, ctx: ProbeContext, optimizer: torch.optim.Optimizer) -> None:
        self.readings.after_optimizer_step(optimizer)

    def at_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if not self.readings.params:
            return
        self._drop_arrival_hooks()
        self.readings.at_step(record.step, self.due(record.step))
        if self.scale_before is not None:
            scale = ctx.scaler._get_scale_async()  # the scale tensor itself: get_scale() would wait for the device
            if scale is not None:
                self.scales.append((record.step, scale.detach().clone()))

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if record.scalars.get("lr") is not None:
            self.readings.lr = record.scalars["lr"]

    def on_flush(self, ctx: ProbeContext) -> None:
        """The norms, updates and histograms gathered on the device since the last flush, to the history and
        TensorBoard."""
        if not self.readings.params:
            return
        updates = self.readings.settle(self._skipped_since())
        self._flush(ctx)
        for update in updates:
            self._log_update(ctx, update.step, update.ratio, update.mask, update.noise_to_signal)
        self._write_histograms(ctx)

    def _skipped_since(self) -> set[int]:
        """Read the scales of the steps since the last flush (one copy): a step after which the scale fell is one
        GradScaler skipped on an overflow."""
        if not self.scales:
            return set()
        scales, self.scales = self.scales, []
        values = torch.stack([scale.reshape(()).to(scales[0][1].device) for _, scale in scales]).cpu().tolist()
        skipped = set()
        for (step, _), value in zip(scales, values):
            if value < self.scale_before:
                skipped.add(step)
                self.skipped.append(step)
            self.scale_before = value
        return skipped

    def _judged(self, ctx: ProbeContext) -> dict[str, Any]:
        """The judged summary of the readings flushed so far, computed once per change and step."""
        key = (self.readings.changes, ctx.step)
        if self.cached is None or self.cached[0] != key:
            summary = self.readings.summary(ctx.step)
            if self.scale_before is not None:
                summary.update(scaler_skipped_steps=len(self.skipped), scaler_first_skipped=self.skipped[:10],
                               scaler_scale=self.scale_before)
            self.cached = (key, judge_gradients(summary))
        return self.cached[1]

    def _figure_path(self) -> str | None:
        """Where the figure is (or will be) drawn: only where there is something to draw."""
        return f"figures/{FIGURE}.png" if self.readings.norms.steps or self.readings.ratios else None

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        for handle in self.arrival_hooks.values():
            handle.remove()
        self.arrival_hooks.clear()
        self.readings.resets.stop()
        self._flush(ctx)
        readings = self.readings
        if not readings.params:
            return None
        steps = readings.norms.steps
        if steps:
            last_norms = readings.norms.history[len(steps) - 1]
            if self.logged_at.get("global") != steps[-1]:  # the last values, so short runs get a point
                self._log_global(ctx, steps[-1], last_norms)
            if self.logged_at.get("layers") != steps[-1]:
                self._log_layers(ctx, steps[-1], last_norms)
        if readings.ratios and self.logged_at.get("update") != readings.ratio_steps[-1]:
            self._log_update(ctx, readings.ratio_steps[-1], readings.ratios[-1], readings.ratio_masks[-1],
                             readings.noise_ratios[-1] if readings.noise_ratios else None)
        self._write_histograms(ctx)
        for name, param in zip(readings.names, readings.params):
            _histogram(ctx, f"weights/{name}", sample(param), ctx.step)
        norms = readings.norms.norms()
        self.summary = self._judged(ctx)
        figure = self._figure_path()
        if figure is not None:
            ctx.draw_figure(FIGURE, gradients_figure, list(readings.names), list(steps), norms,
                            list(readings.ratio_steps), list(readings.ratios), list(readings.noise_steps),
                            list(readings.noise_ratios), readings.networks, caption=GRADIENTS_CAPTION)
        return ProbeSection(title="Gradients and updates", text=gradients_text(self.summary),
                            figures=[figure] if figure else [],
                            table=gradients_table(readings.names, readings.params, norms, self.summary))

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not self.readings.params:
            return []
        return gradient_findings(self._judged(ctx), self._figure_path())

    def state(self) -> dict[str, Any]:
        return dict(self.summary)

    def _arrival(self, index: int) -> Any:
        def hook(param: torch.Tensor) -> None:
            self.readings.arrive(index)

        return hook

    def _drop_arrival_hooks(self) -> None:
        """Each tensor's arrival hook is needed only until its first gradient arrives."""
        if self.readings.new_arrivals:
            self.readings.new_arrivals = False
            for index in [i for i in self.arrival_hooks if self.readings.arrived[i]]:
                self.arrival_hooks.pop(index).remove()

    # -- TensorBoard ------------------------------------------------------------------------------

    def _flush(self, ctx: ProbeContext) -> None:
        """Move the pending gradient norms into the history and log every row kept."""
        for step, norms in self.readings.flush():
            self._log_global(ctx, step, norms)
            self._log_layers(ctx, step, norms)

    def _write_histograms(self, ctx: ProbeContext) -> None:
        """The histograms taken since the last call, to TensorBoard (so that they are not held in memory)."""
        for tag, step, values in self.readings.histograms:
            _histogram(ctx, tag, values, step)
        self.readings.histograms.clear()

    def _log_global(self, ctx: ProbeContext, step: int, norms: np.ndarray) -> None:
        """The global gradient norm and, with several networks, each network's own (grad/global_norm/NAME)."""
        ctx.log_scalar("grad/global_norm", float(np.sqrt(np.nansum(norms ** 2))), step)
        if len(self.readings.networks) > 1:
            for name, columns in self.readings.networks.items():
                if not np.isnan(norms[columns]).all():
                    ctx.log_scalar(f"grad/global_norm/{name}", float(np.sqrt(np.nansum(norms[columns] ** 2))), step)
        self.logged_at["global"] = step

    def _log_layers(self, ctx: ProbeContext, step: int, norms: np.ndarray) -> None:
        if len(self.readings.names) <= TB_LAYERS:
            for name, value in zip(self.readings.names, norms):
                if not math.isnan(value):
                    ctx.log_scalar(f"grad/norm/{name}", float(value), step)
        self.logged_at["layers"] = step

    def _log_update(self, ctx: ProbeContext, step: int, ratio: np.ndarray, mask: np.ndarray,
                    noise_to_signal: float | None) -> None:
        networks, matrices = self.readings.networks, self.readings.matrices
        several = len(networks) > 1
        for name, columns in networks.items():
            measured = np.asarray(columns)[mask[columns]]
            chosen = measured[matrices[measured]] if matrices[measured].any() else measured
            if len(chosen):
                ctx.log_scalar(f"grad/update_ratio/{name}" if several else "grad/update_ratio",
                               float(np.median(ratio[chosen])), step)
        if noise_to_signal is not None and math.isfinite(noise_to_signal):
            ctx.log_scalar("grad/noise_to_signal", noise_to_signal, step)
        self.logged_at["update"] = step


def _histogram(ctx: ProbeContext, tag: str, values: torch.Tensor, step: int) -> None:
    """A TensorBoard histogram of the values within TensorBoard's buckets (|v| <= 1e20; none: nothing written)."""
    finite = values[values.abs() <= TB_HISTOGRAM_LIMIT]
    if finite.numel():
        ctx.tb.histogram(tag, finite, step)

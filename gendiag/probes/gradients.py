"""Gradients and updates of the watched networks: global and per-tensor gradient norms, the update-to-weight ratio
of a step, the gradient noise (how much two consecutive batch gradients differ against what they share), and
histograms of weights and gradients a handful of times over the run.

Cost per due step: one `torch._foreach_norm` over the gradients, its per-tensor norms written into one row of a
buffer allocated once on their device (holding hundreds of small norm tensors alive between flushes slowed the
training step itself by ~4% on a 2-D MLP, more than the norms cost); every 64 due steps the buffer is copied to the
CPU in one go into a history of at most `HISTORY` rows (when full it keeps every other row and halves its rate).
Every `SAMPLE_EVERY` due steps the probe copies the weights and gradients (memory: 2x the watched parameters,
allocated once and reused) and at the next `Monitor.step` measures the update
‖W_s - W_{s-1}‖ / ‖W_s‖ per tensor and the gradient difference. Histograms of weights and gradients: a strided
sample of 4096 values of each is kept at the first due step, then at steps ~100, 1000, 10000, ... (32 kB per
tensor each time, on the CPU) and written to TensorBoard by `finish`, with the final weights.

Where the gradients are read. With an optimizer under watch (`Monitor.watch(model, optimizer=opt)` or
`Monitor.watch_optimizer(opt)`), the gradients of the watched tensors that optimizer holds are read in its step
pre-hook, i.e. the gradients that step uses, and the update is measured in its post-hook: right whatever the order
of `zero_grad`, `step` and `Monitor.step`, with one reading per optimizer step under gradient accumulation, and
after GradScaler's unscaling (a step GradScaler skips calls no hook). Readings taken in hooks get the step of the
next `Monitor.step`. The other tensors are read at `Monitor.step`; a network whose gradients there are all missing
or exactly zero was not seen (a loop that clears them before `Monitor.step`): its norms are left out, not shown as
zeros. A one-shot hook on each parameter notes whether backward ever put a gradient into it (each hook is removed
at the first `Monitor.step` after its gradient arrived).

Gradient noise: for consecutive batch gradients g, g' (nearly the same weights) E‖g - g'‖²/2 estimates the trace of
the batch gradient's covariance and E[g·g'] the squared norm of the true gradient; their ratio is the noise-to-signal
ratio (above 1: a step's gradient is mostly noise).

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection
from gendiag.probes.thinning import LogStride

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HISTORY = 2048
FLUSH_STEPS = 64  # due steps whose gradient norms wait on the device before they are copied together
SAMPLE_EVERY = 20
STALLED_RATIO = 1e-4
STALLED_MOVEMENT = 0.1
HEALTHY_RATIO = (1e-4, 1e-2)
MIN_SAMPLES = 3
TB_LAYERS = 32  # per-tensor TensorBoard curves only up to this many tensors
TB_HISTOGRAM_LIMIT = 1e20  # TensorBoard's histogram buckets end here; NaN and inf fall outside too
HISTOGRAM_VALUES = 4096
HISTOGRAM_SECOND = 100
HISTOGRAM_GROWTH = 10  # histograms at the first due step, then at steps ~100, 1000, 10000, ... and at the end
NAMES_SHOWN = 8  # parameter names quoted in a finding's evidence
MISSING = -1.0  # the norm written for a tensor whose gradient is None at a reading
NOT_READ = -2.0  # a row's columns no reading wrote (another group's tensors); NaN stays a non-finite gradient


@dataclass(eq=False)
class _Group:
    """Watched tensors whose gradients are read together: at one watched optimizer's step (`optimizer` set) or,
    for the tensors no watched optimizer holds, at `Monitor.step`."""

    columns: list[int]
    params: list[torch.Tensor]
    optimizer: torch.optim.Optimizer | None = None
    calls: int = 0  # optimizer steps (hooked) or due `Monitor.step` calls
    due_count: int = 0
    previous: list[torch.Tensor] = field(default_factory=list)  # copies of the weights, then of the gradients
    weights_armed_at: int | None = None  # the step (or optimizer step) whose weights `previous` holds
    grads_armed: bool = False  # `previous` holds the gradients of the armed reading (for the noise pair)
    kept: int = 0  # readings whose norms were kept
    histogram_due: bool = False

    def __post_init__(self) -> None:
        first, last = self.columns[0], self.columns[-1]
        contiguous = self.columns == list(range(first, last + 1))
        self.view: slice | torch.Tensor = slice(first, last + 1) if contiguous else torch.tensor(self.columns)
        self.devices = {p.device for p in self.params}


@register
class GradientsProbe(Probe):
    """Gradient norms, update-to-weight ratios and gradient noise of the watched networks, read where the gradients
    exist; `params-stalled` per network, `no-gradient-reaches`, `gradients-not-seen`."""

    name = "gradients"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []
        self.networks: dict[str, list[int]] = {}
        self.optimizers: list[torch.optim.Optimizer] = []
        self.groups: list[_Group] = []
        self.by_optimizer: dict[int, _Group] = {}
        self.step_group: _Group | None = None
        self.history = np.empty((HISTORY, 0))
        self.history_steps: list[int] = []
        self.pending: torch.Tensor | None = None  # (FLUSH_STEPS, tensors) norms not yet copied to the CPU
        self.pending_steps: list[int] = []
        self.pending_at_step: list[bool] = []  # whether the row holds a reading taken at Monitor.step
        self.row_written = False
        self.row_at_step = False
        self.keep_every = 1
        self.arrived = np.zeros(0, dtype=bool)  # a backward pass accumulated a gradient into the tensor
        self.arrival_hooks: dict[int, torch.utils.hooks.RemovableHandle] = {}
        self.new_arrivals = False
        self.counts: dict[str, dict[str, int]] = {}  # per network: kept readings with a gradient, unseen ones
        self.matrices = np.ones(0, dtype=bool)
        self.ratio_steps: list[int] = []
        self.ratios: list[np.ndarray] = []  # per measured update, every tensor (NaN where not measured)
        self.ratio_masks: list[np.ndarray] = []  # the tensors each update measured (one group's)
        self.open_ratios: list[tuple[np.ndarray, np.ndarray]] = []  # measured, waiting for their step
        self.noise_sums = np.zeros(2)  # sum of ‖g - g'‖²/2 and of g·g' over the measured pairs
        self.open_noise: list[np.ndarray] = []
        self.noise_steps: list[int] = []
        self.noise_ratios: list[float] = []
        self.next_histogram = 0.0
        self.histograms: list[tuple[str, int, torch.Tensor]] = []
        self.open_histograms: list[tuple[str, torch.Tensor]] = []
        self.stride = LogStride(first=250)
        self.layer_stride = LogStride(budget=100, first=500)
        self.ratio_stride = LogStride(first=10)  # over measured updates (one per SAMPLE_EVERY due readings)
        self.logged_at: dict[str, int] = {}
        self.lr: float | None = None
        self.first_step: int | None = None
        self.summary: dict[str, Any] = {}
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("grad", "gradient norms", ["grad/global_norm", "grad/norm/.*"])
        ctx.add_chart("grad", "update / weight per step", ["grad/update_ratio.*"])
        ctx.add_chart("grad", "gradient noise-to-signal", ["grad/noise_to_signal"])

    def on_watch(self, ctx: ProbeContext, name: str, module: torch.nn.Module) -> None:
        seen = {id(p) for p in self.params}
        for param_name, param in module.named_parameters():
            if param.requires_grad and id(param) not in seen:
                index = len(self.params)
                self.names.append(f"{name}.{param_name}")
                self.params.append(param)
                self.networks.setdefault(name, []).append(index)
                self.arrival_hooks[index] = param.register_post_accumulate_grad_hook(self._arrival(index))
        self.counts.setdefault(name, {"with_gradient": 0, "unseen": 0})
        self.arrived = np.concatenate([self.arrived, np.zeros(len(self.params) - len(self.arrived), dtype=bool)])
        self.matrices = _matrix_mask(self.params)
        self.history = np.empty((HISTORY, len(self.params)))  # the set of tensors changed: start again
        self.history_steps, self.pending, self.pending_steps, self.pending_at_step = [], None, [], []
        self.row_written = self.row_at_step = False
        self._group()

    def on_optimizer(self, ctx: ProbeContext, optimizer: torch.optim.Optimizer) -> None:
        self.optimizers.append(optimizer)
        self._group()

    def before_optimizer_step(self, ctx: ProbeContext, optimizer: torch.optim.Optimizer) -> None:
        group = self.by_optimizer.get(id(optimizer))
        if group is None:
            return
        group.calls += 1
        if group.calls % self.every:
            return
        grads = [p.grad for p in group.params]
        if group.grads_armed:
            self._noise(group, grads)
        if self._read(group, grads):
            group.weights_armed_at = group.calls

    def after_optimizer_step(self, ctx: ProbeContext, optimizer: torch.optim.Optimizer) -> None:
        group = self.by_optimizer.get(id(optimizer))
        if group is None or group.weights_armed_at != group.calls:
            return
        self.open_ratios.append(self._update_ratio(group, gap=1))

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if not self.params:
            return
        if self.first_step is None:
            self.first_step = record.step
        if "lr" in record.scalars:
            self.lr = record.scalars["lr"]
        self._drop_arrival_hooks()
        group = self.step_group
        if group is not None:
            grads = [p.grad for p in group.params]
            if group.weights_armed_at is not None:
                gap = max(record.step - group.weights_armed_at, 1)
                self.open_ratios.append(self._update_ratio(group, gap))
                if group.grads_armed:
                    self._noise(group, grads)
            if self.due(record.step):
                group.calls += 1
                if self._read(group, grads):
                    group.weights_armed_at = record.step
        self._close_row(ctx, record.step)
        if record.step >= self.next_histogram:
            for name, param in zip(self.names, self.params):
                self.histograms.append((f"weights/{name}", record.step, _sample(param)))
            for hooked in self.groups:
                hooked.histogram_due = hooked is not group
            if group is not None:
                self._grad_histograms(group, record.step)
            self.next_histogram = max(record.step * HISTOGRAM_GROWTH, HISTOGRAM_SECOND)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        for handle in self.arrival_hooks.values():
            handle.remove()
        self.arrival_hooks.clear()
        self._flush(ctx)
        if not self.params:
            return None
        if self.history_steps:
            last_norms = self.history[len(self.history_steps) - 1]
            if self.logged_at.get("global") != self.history_steps[-1]:  # the last values, so short runs get a point
                self._log_global(ctx, self.history_steps[-1], last_norms)
            if self.logged_at.get("layers") != self.history_steps[-1]:
                self._log_layers(ctx, self.history_steps[-1], last_norms)
        if self.ratios and self.logged_at.get("update") != self.ratio_steps[-1]:
            self._log_update(ctx, self.ratio_steps[-1], self.ratios[-1], self.ratio_masks[-1])
        for tag, step, values in self.histograms:
            _histogram(ctx, tag, values, step)
        for name, param in zip(self.names, self.params):
            _histogram(ctx, f"weights/{name}", _sample(param), ctx.step)
        norms = self.history[: len(self.history_steps)]
        self.summary = self._summarise(norms, ctx.step)
        if len(self.history_steps) or self.ratios:
            self.figure = ctx.save_figure(
                _figure(self.names, self.history_steps, norms, self.ratio_steps, self.ratios, self.noise_steps,
                        self.noise_ratios), "gradients")
        return ProbeSection(title="Gradients and updates", text=_text(self.summary),
                            figures=[self.figure] if self.figure else [], table=self.summary.pop("table"))

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not self.summary:
            return []
        found = [_no_gradient_finding(name, network, self.figure)
                 for name, network in self.summary["networks"].items() if network["no_gradient"]]
        found += [_stalled_finding(name, network, self.figure)
                  for name, network in self.summary["networks"].items()
                  if network["stalled"] and not network["no_gradient"]]
        unseen = [name for name, network in self.summary["networks"].items()
                  if network["not_seen"] and not network["no_gradient"]]
        if unseen:
            found.append(_not_seen_finding(unseen, self.summary["networks"]))
        return found

    def state(self) -> dict[str, Any]:
        return dict(self.summary)

    # -- grouping and hooks -----------------------------------------------------------------------

    def _group(self) -> None:
        """Split the watched tensors by the first watched optimizer that holds each; the rest are read at
        `Monitor.step`. Called whenever a network or an optimizer is watched (the readings start again)."""
        owner: dict[int, int] = {}
        for position, optimizer in enumerate(self.optimizers):
            for param_group in optimizer.param_groups:
                for param in param_group["params"]:
                    owner.setdefault(id(param), position)
        columns: dict[int | None, list[int]] = {}
        for index, param in enumerate(self.params):
            columns.setdefault(owner.get(id(param)), []).append(index)
        self.groups, self.by_optimizer, self.step_group = [], {}, None
        for position, indices in columns.items():
            group = _Group(indices, [self.params[i] for i in indices],
                           None if position is None else self.optimizers[position])
            self.groups.append(group)
            if group.optimizer is None:
                self.step_group = group
            else:
                self.by_optimizer[id(group.optimizer)] = group
        self.open_ratios, self.open_noise, self.open_histograms = [], [], []

    def _arrival(self, index: int) -> Any:
        def hook(param: torch.Tensor) -> None:
            self.arrived[index] = True
            self.new_arrivals = True

        return hook

    def _drop_arrival_hooks(self) -> None:
        """Each tensor's arrival hook is needed only until its first gradient arrives."""
        if self.new_arrivals:
            self.new_arrivals = False
            for index in [i for i in self.arrival_hooks if self.arrived[i]]:
                self.arrival_hooks.pop(index).remove()

    # -- per-reading work -------------------------------------------------------------------------

    def _read(self, group: _Group, grads: list[torch.Tensor | None]) -> bool:
        """One due reading of a group's gradients: its norms into the open row; every SAMPLE_EVERY readings a copy
        of the weights and gradients, so that the update and the gradient noise can be measured (returns True)."""
        group.due_count += 1
        complete = all(g is not None for g in grads)
        if group.due_count % self.keep_every == 0:
            norms = torch._foreach_norm(grads) if complete else [
                g.norm() if g is not None else _missing_norm(p) for g, p in zip(grads, group.params)]
            self._keep(group, norms)
        if group.histogram_due:
            group.histogram_due = False
            self._grad_histograms(group, None)
        if group.due_count % SAMPLE_EVERY:
            return False
        self._arm(group, grads, complete)
        return True

    def _keep(self, group: _Group, norms: list[torch.Tensor]) -> None:
        """Write a group's norms into the open row of the pending buffer (on their device)."""
        if self.pending is None:
            dtype = torch.float64 if any(p.dtype == torch.float64 for p in self.params) else torch.float32
            self.pending = torch.empty(FLUSH_STEPS, len(self.params), dtype=dtype, device=norms[0].device)
        row = self.pending[len(self.pending_steps)]
        if not self.row_written:
            if len(self.groups) > 1:
                row.fill_(NOT_READ)
            self.row_written = True
        if group.devices != {self.pending.device}:
            norms = [norm.to(self.pending.device) for norm in norms]
        if isinstance(group.view, slice):
            torch.stack(norms, out=row[group.view])
        else:
            if group.view.device != row.device:
                group.view = group.view.to(row.device)
            row.index_copy_(0, group.view, torch.stack(norms).to(row.dtype))
        group.kept += 1
        self.row_at_step = self.row_at_step or group.optimizer is None

    def _close_row(self, ctx: ProbeContext, step: int) -> None:
        """`Monitor.step` gives the readings taken since the last one their step."""
        if self.row_written:
            self.pending_steps.append(step)
            self.pending_at_step.append(self.row_at_step)
            self.row_written = self.row_at_step = False
            if len(self.pending_steps) >= FLUSH_STEPS:
                self._flush(ctx)
        for ratio, mask in self.open_ratios:
            self.ratio_steps.append(step)
            self.ratios.append(ratio)
            self.ratio_masks.append(mask)
            if self.ratio_stride.take(len(self.ratio_steps)):
                self._log_update(ctx, step, ratio, mask)
        for sums in self.open_noise:
            self.noise_sums += sums
            self.noise_steps.append(step)
            self.noise_ratios.append(float(self.noise_sums[0] / self.noise_sums[1])
                                     if self.noise_sums[1] > 0 else math.inf)
        self.histograms += [(tag, step, values) for tag, values in self.open_histograms]
        self.open_ratios, self.open_noise, self.open_histograms = [], [], []

    def _flush(self, ctx: ProbeContext) -> None:
        """Move the pending gradient norms into the history (one copy to the CPU) and log a few. A network whose
        gradients read at `Monitor.step` are all missing or exactly zero was not seen: its norms are not kept."""
        if not self.pending_steps:
            return
        rows = self.pending[: len(self.pending_steps)].to(dtype=torch.float64, device="cpu").numpy()
        steps, self.pending_steps, at_step, self.pending_at_step = self.pending_steps, [], self.pending_at_step, []
        read_at_step = set(self.step_group.columns) if self.step_group is not None else set()
        for name, columns in self.networks.items():
            values = rows[:, columns]
            read = ~(values == NOT_READ).all(axis=1)
            present = read & ((values != MISSING) & (values != NOT_READ) & (values != 0)).any(axis=1)  # NaN counts
            self.counts[name]["with_gradient"] += int(present.sum())
            if columns[0] in read_at_step:
                unseen = read & ~present & np.array(at_step)
                self.counts[name]["unseen"] += int(unseen.sum())
                rows[np.ix_(unseen, columns)] = NOT_READ
        kept = ~(rows == NOT_READ).all(axis=1)
        rows[rows < 0] = np.nan  # missing gradients and other groups' tensors: not measured
        for step, norms, keep in zip(steps, rows, kept):
            if not keep:
                continue
            if len(self.history_steps) == HISTORY:
                self.history[: HISTORY // 2] = self.history[::2]
                self.history_steps = self.history_steps[::2]
                self.keep_every *= 2
            self.history[len(self.history_steps)] = norms
            self.history_steps.append(step)
            if self.stride.take(step):
                self._log_global(ctx, step, norms)
            if self.layer_stride.take(step):
                self._log_layers(ctx, step, norms)

    def _log_global(self, ctx: ProbeContext, step: int, norms: np.ndarray) -> None:
        ctx.log_scalar("grad/global_norm", float(np.sqrt(np.nansum(norms ** 2))), step)
        self.logged_at["global"] = step

    def _log_layers(self, ctx: ProbeContext, step: int, norms: np.ndarray) -> None:
        if len(self.names) <= TB_LAYERS:
            for name, value in zip(self.names, norms):
                if not math.isnan(value):
                    ctx.log_scalar(f"grad/norm/{name}", float(value), step)
        self.logged_at["layers"] = step

    def _log_update(self, ctx: ProbeContext, step: int, ratio: np.ndarray, mask: np.ndarray) -> None:
        several = len(self.networks) > 1
        for name, columns in self.networks.items():
            measured = np.asarray(columns)[mask[columns]]
            chosen = measured[self.matrices[measured]] if self.matrices[measured].any() else measured
            if len(chosen):
                ctx.log_scalar(f"grad/update_ratio/{name}" if several else "grad/update_ratio",
                               float(np.median(chosen)), step)
        if self.noise_ratios and math.isfinite(self.noise_ratios[-1]):
            ctx.log_scalar("grad/noise_to_signal", self.noise_ratios[-1], step)
        self.logged_at["update"] = step

    def _arm(self, group: _Group, grads: list[torch.Tensor | None], complete: bool) -> None:
        """Copy the weights (and gradients, for the noise pair) so that the next update can be measured."""
        with torch.no_grad():
            weights = [p.detach() for p in group.params]
            if not group.previous:
                group.previous = [torch.empty_like(w) for w in weights + weights]
            size = len(weights)
            if complete:
                torch._foreach_copy_(group.previous, weights + grads)
            else:
                torch._foreach_copy_(group.previous[:size], weights)
        group.grads_armed = complete

    def _update_ratio(self, group: _Group, gap: int) -> tuple[np.ndarray, np.ndarray]:
        """‖W - W_armed‖ / gap / ‖W‖ per tensor of the group (NaN for the other tensors), and the group's mask."""
        group.weights_armed_at = None
        size = len(group.params)
        with torch.no_grad():
            weights = [p.detach() for p in group.params]
            differences = group.previous[:size]
            torch._foreach_sub_(differences, weights)  # the copies become the differences until the next arming
            norms = torch.stack(torch._foreach_norm(differences + weights))
            norms = norms.to(dtype=torch.float64, device="cpu").numpy()
        ratio, mask = np.full(len(self.params), np.nan), np.zeros(len(self.params), dtype=bool)
        ratio[group.columns] = norms[:size] / gap / np.maximum(norms[size:], 1e-30)
        mask[group.columns] = True
        return ratio, mask

    def _noise(self, group: _Group, grads: list[torch.Tensor | None]) -> None:
        """The gradient-noise pair: the armed reading's gradients against these ones."""
        group.grads_armed = False
        if any(g is None for g in grads):
            return
        size = len(group.params)
        with torch.no_grad():
            before = group.previous[size:]
            norms = [*torch._foreach_norm(grads), *torch._foreach_norm(before)]
            torch._foreach_sub_(before, grads)
            norms = torch.stack([*norms, *torch._foreach_norm(before)]).to(dtype=torch.float64, device="cpu").numpy()
        now, previous, change = (np.square(norms[i * size: (i + 1) * size]).sum() for i in range(3))
        sums = np.array([change / 2, (now + previous - change) / 2])
        if np.isfinite(sums).all():
            self.open_noise.append(sums)

    def _grad_histograms(self, group: _Group, step: int | None) -> None:
        """Keep a strided sample of each tensor's gradient; `finish` writes the histograms (a TensorBoard histogram
        costs milliseconds, far more than the copy). Samples taken in an optimizer hook get the next step."""
        with torch.no_grad():
            for index, param in zip(group.columns, group.params):
                if param.grad is not None:
                    sample = (f"grads/{self.names[index]}", _sample(param.grad))
                    if step is None:
                        self.open_histograms.append(sample)
                    else:
                        self.histograms.append((sample[0], step, sample[1]))

    # -- the run's summary ------------------------------------------------------------------------

    def _summarise(self, norms: np.ndarray, last_step: int) -> dict[str, Any]:
        global_norm = np.sqrt(np.nansum(norms ** 2, axis=1))
        steps_run = last_step - (self.first_step or 0) + 1
        summary: dict[str, Any] = {
            "tensors": len(self.names), "parameters": int(sum(p.numel() for p in self.params)),
            "grad_norm_first": float(global_norm[0]) if len(norms) else None,
            "grad_norm_last": float(global_norm[-1]) if len(norms) else None,
            "grad_norm_median": float(np.median(global_norm)) if len(norms) else None,
            "lr": self.lr,
            "noise_to_signal": float(self.noise_sums[0] / self.noise_sums[1]) if self.noise_sums[1] > 0 else None,
            **_updates(self.ratios, self.ratio_masks, self.ratio_steps, list(range(len(self.params))), self.names,
                       self.matrices, steps_run),
        }
        networks: dict[str, Any] = {}
        for name, columns in self.networks.items():
            group = next(g for g in self.groups if columns[0] in g.columns)
            hooked = group.optimizer is not None
            updates = _updates(self.ratios, self.ratio_masks, self.ratio_steps, columns, self.names, self.matrices,
                               group.calls if hooked else steps_run)
            counts = self.counts[name]
            arrived = bool(self.arrived[columns].any())
            if hooked:  # read where the optimizer uses them: missing or zero at every step is what it got
                no_gradient = group.kept >= MIN_SAMPLES and counts["with_gradient"] == 0
            else:  # read at Monitor.step: only a gradient that never arrived, with weights that never moved
                no_gradient = (not arrived and counts["with_gradient"] == 0 and group.kept >= MIN_SAMPLES
                               and updates["never_moved"])
            networks[name] = {
                "tensors": len(columns), "read_at": "optimizer step" if hooked else "Monitor.step",
                "lr": float(group.optimizer.param_groups[0]["lr"]) if hooked else self.lr,
                "optimizer_steps": group.calls if hooked else None, "readings": group.kept,
                "readings_with_gradient": counts["with_gradient"], "readings_unseen": counts["unseen"],
                "gradient_arrived": arrived, "no_gradient": bool(no_gradient),
                "not_seen": bool(not hooked and arrived and group.kept and counts["unseen"] == group.kept),
                "other_networks_with_gradient": [
                    other for other, other_columns in self.networks.items() if other != name and (
                        self.arrived[other_columns].any() or self.counts[other]["with_gradient"])],
                "first_step": self.first_step, "last_step": last_step,
                "parameters": [self.names[i] for i in columns], **updates,
            }
        summary["networks"] = networks
        summary["stalled"] = any(n["stalled"] and not n["no_gradient"] for n in networks.values())
        summary["table"] = pd.DataFrame(
            {"grad norm (median)": _median_per_tensor(norms), "grad norm (last)": _last_per_tensor(norms),
             "weight norm": [float(p.detach().norm()) for p in self.params],
             "update / weight (median)": [summary["update_ratio_by_tensor"].get(n, np.nan) for n in self.names]},
            index=pd.Index(self.names, name="tensor"))
        return summary


def _updates(ratios: list[np.ndarray], masks: list[np.ndarray], ratio_steps: list[int], columns: list[int],
             names: list[str], matrices: np.ndarray, steps_run: int) -> dict[str, Any]:
    """Update-to-weight figures of some tensors (one network, or all) over the measured updates that cover them,
    and whether they stalled: never moved (critical) or so slowly that the whole run moves them by < 10%
    (warning). `masks` says which tensors each update measured (one group's)."""
    result: dict[str, Any] = {"update_samples": 0, "stalled": False, "never_moved": False,
                              "update_ratio_by_tensor": {}}
    wanted = np.asarray(columns)
    per_sample: list[float] = []
    finite_rows: list[bool] = []
    moved_rows: list[bool] = []
    steps: list[int] = []
    moved_values: dict[int, list[float]] = {int(c): [] for c in wanted}
    for step, ratio, mask in zip(ratio_steps, ratios, masks):
        measured = wanted[mask[wanted]]
        if not len(measured):
            continue
        values = ratio[measured]
        finite = bool(np.isfinite(values).all())
        moved = finite and bool((values > 0).any())
        if moved:
            chosen = measured[matrices[measured]] if matrices[measured].any() else measured
            per_sample.append(float(np.median(ratio[chosen])))
            for column, value in zip(measured, values):
                moved_values[int(column)].append(float(value))
        steps.append(step)
        finite_rows.append(finite)
        moved_rows.append(moved)
    if not steps:
        return result
    finite, moved = np.array(finite_rows), np.array(moved_rows)
    median_ratio = float(np.median(per_sample)) if per_sample else 0.0
    result.update(
        update_samples=len(steps), update_ratio_median=median_ratio, zero_update_samples=int((finite & ~moved).sum()),
        nonfinite_update_samples=int((~finite).sum()), never_moved=bool(finite.any() and not moved.any()),
        first_update_step=steps[0], last_update_step=steps[-1], movement_over_run=median_ratio * steps_run,
        update_ratio_by_tensor={names[c]: float(np.median(v)) if v else 0.0 for c, v in moved_values.items()},
    )
    slow = moved.any() and median_ratio < STALLED_RATIO and result["movement_over_run"] < STALLED_MOVEMENT
    result["stalled"] = bool(finite.sum() >= MIN_SAMPLES and (result["never_moved"] or slow))
    return result


def _sample(values: torch.Tensor) -> torch.Tensor:
    """An evenly strided subset of about HISTOGRAM_VALUES values (the histogram's shape at a bounded cost), on the
    CPU."""
    values = values.detach().reshape(-1)
    return values[:: max(1, values.numel() // HISTOGRAM_VALUES)].float().cpu()


def _histogram(ctx: ProbeContext, tag: str, values: torch.Tensor, step: int) -> None:
    """A TensorBoard histogram of the values within TensorBoard's buckets (|v| <= 1e20; none: nothing written)."""
    finite = values[values.abs() <= TB_HISTOGRAM_LIMIT]
    if finite.numel():
        ctx.tb.histogram(tag, finite, step)


def _missing_norm(like: torch.Tensor) -> torch.Tensor:
    """The MISSING marker, in place of the norm of a tensor without a gradient at this reading."""
    return torch.full((), MISSING, device=like.device)


def _median_per_tensor(norms: np.ndarray) -> np.ndarray:
    """Median over steps of each tensor's gradient norm, ignoring steps without a gradient (NaN when none)."""
    return pd.DataFrame(norms).median().to_numpy()


def _matrix_mask(params: list[torch.Tensor]) -> np.ndarray:
    """Weight matrices and kernels (biases and norm scales can start at 0 and have no meaningful ratio); all
    tensors when there are none."""
    mask = np.array([p.dim() >= 2 for p in params])
    return mask if mask.any() else np.ones(len(params), dtype=bool)



def _last_per_tensor(norms: np.ndarray) -> np.ndarray:
    """Each tensor's last measured gradient norm (NaN when none)."""
    return pd.DataFrame(norms).ffill().iloc[-1].to_numpy() if len(norms) else np.full(norms.shape[1], np.nan)


def _update_evidence(network: dict[str, Any]) -> dict[str, Any]:
    evidence = {"network": network["name"]}
    evidence.update({k: network[k] for k in ("update_ratio_median", "zero_update_samples", "nonfinite_update_samples",
                                             "update_samples", "first_update_step", "last_update_step",
                                             "movement_over_run")})
    if network["lr"] is not None:
        evidence["lr"] = network["lr"]
    evidence["healthy_update_ratio"] = list(HEALTHY_RATIO)
    evidence["update_ratio_by_tensor"] = {name: float(f"{ratio:.4g}")
                                          for name, ratio in network["update_ratio_by_tensor"].items()}
    return evidence


def _stalled_finding(name: str, network: dict[str, Any], figure: str | None) -> Finding:
    lr = f" (learning rate {network['lr']:g})" if network.get("lr") is not None else ""
    evidence = _update_evidence({**network, "name": name})
    if network["never_moved"]:
        return Finding(
            code="params-stalled", severity="critical", title=f"The weights of {name} never change",
            message=(f"In all {network['zero_update_samples']} measured updates with finite weights (steps "
                     f"{network['first_update_step']}–{network['last_update_step']}) the weights of {name} were "
                     f"exactly the same as one step before{lr}: {name} does not train."),
            evidence=evidence,
            suggestion=("Call optimizer.step() after loss.backward(), pass the model's parameters to the optimizer "
                        "(not a copy's), and check that the learning rate is not 0."),
            figure=figure,
        )
    return Finding(
        code="params-stalled", severity="warning", title=f"The weights of {name} barely move",
        message=(f"A step changes the weight matrices of {name} by a median {network['update_ratio_median']:.2g} "
                 f"of their size{lr}, against about 1e-3 in healthy training (1e-4 to 1e-2). At that rate the "
                 f"whole run moves them by at most {network['movement_over_run']:.2%} of their size."),
        evidence=evidence,
        suggestion="Raise the learning rate (Adam: 1e-4 to 1e-3 is a usual start) and check any scheduler's factor.",
        figure=figure,
    )


def _no_gradient_finding(name: str, network: dict[str, Any], figure: str | None) -> Finding:
    parameters = network["parameters"]
    evidence: dict[str, Any] = {
        "network": name, "read_at": network["read_at"], "readings": network["readings"],
        "readings_with_gradient": 0, "steps": [network["first_step"], network["last_step"]],
        "gradient_arrived": network["gradient_arrived"],
        "other_networks_with_gradient": network["other_networks_with_gradient"],
        "parameters": parameters[:NAMES_SHOWN] + ([f"... {len(parameters) - NAMES_SHOWN} more"]
                                                  if len(parameters) > NAMES_SHOWN else []),
    }
    if network["optimizer_steps"] is not None:
        evidence["optimizer_steps"] = network["optimizer_steps"]
    if network["update_samples"]:
        evidence["zero_update_samples"] = network["zero_update_samples"]
    others = network["other_networks_with_gradient"]
    contrast = f" while {', '.join(others)} got gradients" if others else ""
    if network["read_at"] == "optimizer step":
        where = (f"at each of the {network['readings']} readings taken just before its optimizer's step (optimizer "
                 f"steps {network['optimizer_steps']}), every gradient of {name} was missing or exactly zero")
    else:
        where = (f"in {network['readings']} readings, no backward pass put a gradient into any parameter of {name}, "
                 f"and its weights never changed in {network['zero_update_samples']} measured updates")
    if network["gradient_arrived"]:
        cause = (f"Gradients did reach {name} in backward, so they are cleared before its optimizer uses them (a "
                 "zero_grad between loss.backward() and optimizer.step()) or they are exactly zero (a loss term "
                 "multiplied by 0, every unit inactive).")
        suggestion = (f"Call zero_grad before loss.backward() (or after optimizer.step()), never between them; check "
                      f"that {name}'s loss term has a non-zero weight.")
    else:
        cause = (f"Likely causes: a .detach() (or torch.no_grad()) between {name}'s output and the loss it is trained "
                 f"on — in a GAN, the generator's step must call D(fake), not D(fake.detach()) —, {name}'s parameters "
                 "set to requires_grad=False, or an optimizer built over other parameters than the ones the loss "
                 "reaches.")
        suggestion = (f"Follow {name}'s output to the loss of its own step and remove the detach or no_grad on that "
                      f"path; check requires_grad of {name}'s parameters and which parameters its optimizer holds.")
    return Finding(
        code="no-gradient-reaches", severity="critical", title=f"No gradient reaches {name}",
        message=f"Over steps {network['first_step']}–{network['last_step']}, {where}{contrast}: {name} does not "
                f"train. {cause}",
        evidence=evidence, suggestion=suggestion, figure=figure,
    )


def _not_seen_finding(names: list[str], networks: dict[str, Any]) -> Finding:
    """Networks whose gradients backward did fill but that were always cleared (or zero) when Monitor.step ran."""
    listed = ", ".join(names)
    readings = {name: networks[name]["readings"] for name in names}
    return Finding(
        code="gradients-not-seen", severity="info", title=f"No gradient was present when Monitor.step ran ({listed})",
        message=(f"Backward did put gradients into {listed}, but at every one of the readings taken at Monitor.step "
                 f"({readings}) they were missing or exactly zero: the loop clears them before Monitor.step "
                 "(optimizer.zero_grad() after optimizer.step() and before mon.step). Their gradient norms are left "
                 "out of the report rather than shown as zeros; the update-to-weight ratios are still measured."),
        evidence={"networks": names, "readings": readings,
                  "gradient_arrived": {n: networks[n]["gradient_arrived"] for n in names}},
        suggestion=("Pass optimizer= to mon.watch(model, optimizer=opt) (or call mon.watch_optimizer(opt)): the "
                    "gradients are then read just before each optimizer step, whatever the loop's order."),
    )


def _figure(names: list[str], steps: list[int], norms: np.ndarray, ratio_steps: list[int],
            ratios: list[np.ndarray], noise_steps: list[int], noise_ratios: list[float]) -> Figure:
    figure, axes = new_figure(1, 3, figsize=(15, 3.8))
    shown = min(len(names), 12)
    order = np.argsort(-np.nan_to_num(_median_per_tensor(norms), nan=-1.0))[:shown]
    positive = np.where(norms > 0, norms, np.nan)
    for index in order:
        if not np.isnan(positive[:, index]).all():
            axes[0].plot(steps, positive[:, index], lw=0.8, alpha=0.7, label=names[index])
    global_norm = np.sqrt(np.nansum(norms ** 2, axis=1))
    if (global_norm > 0).any():
        axes[0].plot(steps, np.where(global_norm > 0, global_norm, np.nan), color="k", lw=1.4, label="global")
        axes[0].set_yscale("log")
        legend(axes[0], fontsize=6, ncol=2)
    else:
        axes[0].text(0.5, 0.5, "no gradient measured", ha="center", va="center", transform=axes[0].transAxes)
    axes[0].set_title("gradient norm per tensor" + (f" ({shown} largest)" if shown < len(names) else ""))
    axes[0].set_xlabel("step")
    if ratios:
        matrix = np.stack(ratios)
        positive_ratios = np.where(matrix > 0, matrix, np.nan)
        for index in order:
            if not np.isnan(positive_ratios[:, index]).all():
                axes[1].plot(ratio_steps, positive_ratios[:, index], lw=0.8, alpha=0.7)
        axes[1].axhspan(*HEALTHY_RATIO, color="tab:green", alpha=0.1, label="healthy range")
        axes[1].axhline(STALLED_RATIO, color="tab:red", ls="--", lw=1, label="stalled below")
        axes[1].set_yscale("log")
        legend(axes[1], fontsize=7)
    axes[1].set_title("update / weight per step")
    axes[1].set_xlabel("step")
    finite = [(s, r) for s, r in zip(noise_steps, noise_ratios) if math.isfinite(r) and r > 0]
    if finite:
        axes[2].plot(*zip(*finite), color="tab:purple")
        axes[2].set_yscale("log")
    axes[2].axhline(1.0, color="gray", ls=":", lw=1)
    axes[2].set_title("gradient noise-to-signal (running)")
    axes[2].set_xlabel("step")
    figure.tight_layout()
    return figure


def _text(summary: dict[str, Any]) -> str:
    lines = [f"{summary['tensors']} parameter tensors ({summary['parameters']:,} values)."]
    if summary["grad_norm_median"] is not None:
        lines.append(f"Global gradient norm: {summary['grad_norm_first']:.3g} at the first recorded step, median "
                     f"{summary['grad_norm_median']:.3g}, {summary['grad_norm_last']:.3g} at the last.")
    else:
        lines.append("No gradient norm was measured (see the findings).")
    read_at = {name: network["read_at"] for name, network in summary["networks"].items()}
    lines.append("Where the gradients were read: " + "; ".join(f"{name} at each {where}"
                                                               for name, where in read_at.items()) + ".")
    for name, network in summary["networks"].items():
        if network["update_samples"]:
            lines.append(f"{name}: median update-to-weight ratio of the weight matrices over "
                         f"{network['update_samples']} measured updates: {network['update_ratio_median']:.3g} "
                         f"(healthy about 1e-3); {network['zero_update_samples']} of them left the weights unchanged.")
    if summary["noise_to_signal"] is not None:
        lines.append(f"Gradient noise-to-signal ratio (batch-gradient variance over squared mean gradient): "
                     f"{summary['noise_to_signal']:.3g}" + (" — a step's gradient is mostly noise." if
                                                         summary["noise_to_signal"] > 1 else "."))
    return " ".join(lines)

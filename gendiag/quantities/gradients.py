"""Gradients and updates of watched networks: per-tensor gradient norms (kept in `gradient_norms.NormHistory`),
the update-to-weight ratio ‖W_s - W_{s-1}‖ / ‖W_s‖ per tensor, the gradient noise, strided samples of weights and
gradients for histograms, and the run's summary per network (`GradientReadings.summary`).

Every SAMPLE_EVERY due readings a group's weights and gradients are copied (memory: 2x the watched parameters,
allocated once and reused); the next step (or optimizer step) measures the update against them and the
gradient difference. The measured norms stay on the device until `settle` (at the Monitor's flush) reads them all
in one copy. Gradient noise: for consecutive batch gradients g, g' (nearly the same weights)
E‖g - g'‖²/2 estimates the trace of the batch gradient's covariance and E[g·g'] the squared norm of the true
gradient; their ratio is the noise-to-signal ratio (above 1: a step's gradient is mostly noise)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gendiag.quantities.grad_reset import STEP_EVERY, STEP_WINDOW, ResetWatch, accumulation_summary
from gendiag.quantities.gradient_norms import Group, NormHistory, missing_norm

SAMPLE_EVERY = 20
HISTOGRAM_VALUES = 4096
HISTOGRAM_STRIDE = 100  # histograms at the first due step, then at the multiples of 100 ...
HISTOGRAM_BUDGET = 20  # ... the interval doubling after every 20 histograms


@dataclass
class UpdateRecord:
    """One measured update, given its step at `Monitor.step`: the ratio per tensor (NaN where not measured), the
    tensors measured, and the running noise-to-signal ratio when it was given its step."""

    step: int
    number: int  # 1 for the first measured update of the run
    ratio: np.ndarray
    mask: np.ndarray
    noise_to_signal: float | None


class GradientReadings:
    """The readings of the watched tensors' gradients and updates, grouped by where they are read. The probe
    calls `before_optimizer_step`/`after_optimizer_step` from a watched optimizer's hooks and `at_step` at each
    `Monitor.step`; `every` is the reading interval (in optimizer steps or steps)."""

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []
        self.networks: dict[str, list[int]] = {}
        self.resets = ResetWatch(self.networks)
        self.optimizers: list[torch.optim.Optimizer] = []
        self.groups: list[Group] = []
        self.by_optimizer: dict[int, Group] = {}
        self.step_group: Group | None = None
        self.norms = NormHistory()
        self.arrived = np.zeros(0, dtype=bool)  # a backward pass accumulated a gradient into the tensor
        self.new_arrivals = False
        self.matrices = np.ones(0, dtype=bool)
        self.dtype = torch.float32  # of the norm buffer: float64 when any watched tensor is
        self.ratio_steps: list[int] = []
        self.ratios: list[np.ndarray] = []  # per measured update, every tensor (NaN where not measured)
        self.ratio_masks: list[np.ndarray] = []  # the tensors each update measured (one group's)
        self.open_ratios: list[tuple[torch.Tensor, list[int], int]] = []  # measured, waiting for their step
        self.unread: list[tuple[str, int, Any]] = []  # ("ratio" | "noise", step, measurement on the device)
        self.noise_sums = np.zeros(2)  # sum of ‖g - g'‖²/2 and of g·g' over the measured pairs
        self.open_noise: list[tuple[torch.Tensor, int]] = []
        self.noise_steps: list[int] = []
        self.noise_ratios: list[float] = []
        self.next_histogram = 0
        self.histogram_stride = HISTOGRAM_STRIDE
        self.histograms_taken = 0
        self.histograms: list[tuple[str, int, torch.Tensor]] = []
        self.open_histograms: list[tuple[str, torch.Tensor]] = []
        self.lr: float | None = None
        self.first_step: int | None = None
        self.changes = 0  # counts every reading and step, to key cached summaries
        self.step_calls = 0  # Monitor.step calls

    # -- what is watched --------------------------------------------------------------------------

    def watch(self, name: str, module: torch.nn.Module) -> list[tuple[int, torch.Tensor]]:
        """Add a network's trainable parameters not watched yet; returns the new (index, parameter) pairs. The
        readings start again (the set of tensors changed)."""
        seen = {id(p) for p in self.params}
        added = []
        for param_name, param in module.named_parameters():
            if param.requires_grad and id(param) not in seen:
                index = len(self.params)
                self.names.append(f"{name}.{param_name}")
                self.params.append(param)
                self.networks.setdefault(name, []).append(index)
                added.append((index, param))
        self.norms.add_network(name)
        self.arrived = np.concatenate([self.arrived, np.zeros(len(self.params) - len(self.arrived), dtype=bool)])
        self.matrices = matrix_mask(self.params)
        self.dtype = torch.float64 if any(p.dtype == torch.float64 for p in self.params) else torch.float32
        self.norms.restart(len(self.params))
        self._group()
        return added

    def add_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizers.append(optimizer)
        self._group()

    def arrive(self, index: int) -> None:
        """Backward accumulated a gradient into tensor `index`."""
        self.arrived[index] = True
        self.new_arrivals = True

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
        self.resets.stop()
        self.groups, self.by_optimizer, self.step_group = [], {}, None
        for position, indices in columns.items():
            group = Group(indices, [self.params[i] for i in indices],
                          None if position is None else self.optimizers[position])
            self.groups.append(group)
            if group.optimizer is None:
                self.step_group = group
            else:
                self.by_optimizer[id(group.optimizer)] = group
        self.open_ratios, self.open_noise, self.open_histograms = [], [], []

    # -- readings ---------------------------------------------------------------------------------

    def before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        group = self.by_optimizer.get(id(optimizer))
        if group is None:
            return
        self.changes += 1
        group.calls += 1
        self.resets.close(id(group))
        if group.calls % self.every:
            return
        grads = [p.grad for p in group.params]
        if group.grads_armed:
            self._noise(group, grads)
        if self._read(group, grads):
            group.weights_armed_at = group.calls

    def after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        group = self.by_optimizer.get(id(optimizer))
        if group is None:
            return
        if self.resets.opens(group.calls):
            self.resets.start(id(group), group.columns, group.params)
        if group.weights_armed_at != group.calls:
            return
        self.open_ratios.append(self._update_ratio(group, gap=1))

    def at_step(self, step: int, due: bool) -> None:
        """`Monitor.step`: read the tensors no optimizer hook reads (when `due`), give the readings since the last
        call their step, sample histograms when their step has come; all of it on the device."""
        self.changes += 1
        if self.first_step is None:
            self.first_step = step
        group = self.step_group
        if group is not None:
            self.resets.close(id(group))
            self.step_calls += 1
            if self.resets.opens(self.step_calls, STEP_EVERY):
                self.resets.start(id(group), group.columns, group.params, STEP_WINDOW)
        self.resets.give_step(step)
        if group is not None:
            grads = [p.grad for p in group.params]
            if group.weights_armed_at is not None:
                gap = max(step - group.weights_armed_at, 1)
                self.open_ratios.append(self._update_ratio(group, gap))
                if group.grads_armed:
                    self._noise(group, grads)
            if due:
                group.calls += 1
                if self._read(group, grads):
                    group.weights_armed_at = step
        self.norms.close_row(step)
        self.unread += [("ratio", step, measured) for measured in self.open_ratios]
        self.unread += [("noise", step, measured) for measured in self.open_noise]
        self.histograms += [(tag, step, values) for tag, values in self.open_histograms]
        self.open_ratios, self.open_noise, self.open_histograms = [], [], []
        if step >= self.next_histogram:
            for name, param in zip(self.names, self.params):
                self.histograms.append((f"weights/{name}", step, sample(param)))
            for hooked in self.groups:
                hooked.histogram_due = hooked is not group
            if group is not None:
                self._grad_histograms(group, step)
            self.histograms_taken += 1
            if self.histograms_taken % HISTOGRAM_BUDGET == 0:
                self.histogram_stride *= 2
            self.next_histogram = (step // self.histogram_stride + 1) * self.histogram_stride

    def settle(self, skipped: frozenset[int] | set[int] = frozenset()) -> list[UpdateRecord]:
        """Read the updates and gradient-noise pairs measured since the last call (one copy to the host) and add
        them, in the order of their steps; returns the updates. An update measured at a step in `skipped` (a step
        GradScaler skipped: the weights could not move) is left out."""
        self.changes += 1
        self.resets.settle()
        events, self.unread = self.unread, []
        if not events:
            return []
        device = events[0][2][0].device
        values = torch.cat([measured[0].to(device=device, dtype=torch.float64) for _, _, measured in events])
        values = values.cpu().numpy()
        updates, offset = [], 0
        for kind, step, (norms, *shape) in events:
            found, offset = values[offset: offset + len(norms)], offset + len(norms)
            if kind == "ratio":
                if step in skipped:
                    continue
                columns, gap = shape
                ratio, mask = np.full(len(self.params), np.nan), np.zeros(len(self.params), dtype=bool)
                ratio[columns] = found[:len(columns)] / gap / np.maximum(found[len(columns):], 1e-30)
                mask[columns] = True
                self.ratio_steps.append(step)
                self.ratios.append(ratio)
                self.ratio_masks.append(mask)
                noise = self.noise_ratios[-1] if self.noise_ratios else None
                updates.append(UpdateRecord(step, len(self.ratio_steps), ratio, mask, noise))
                continue
            size = shape[0]
            now, previous, change = (np.square(found[i * size: (i + 1) * size]).sum() for i in range(3))
            sums = np.array([change / 2, (now + previous - change) / 2])
            if np.isfinite(sums).all():
                self.noise_sums += sums
                self.noise_steps.append(step)
                self.noise_ratios.append(float(self.noise_sums[0] / self.noise_sums[1])
                                         if self.noise_sums[1] > 0 else math.inf)
        return updates

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """Move the pending norms into the history; returns the rows kept, (step, norms)."""
        self.changes += 1
        read_at_step = set(self.step_group.columns) if self.step_group is not None else set()
        for group in self.groups:
            group.flushed = group.kept
        return self.norms.flush(self.networks, read_at_step)

    def _read(self, group: Group, grads: list[torch.Tensor | None]) -> bool:
        """One due reading of a group's gradients: its norms into the open row; every SAMPLE_EVERY readings a copy
        of the weights and gradients, so that the update and the gradient noise can be measured (returns True)."""
        group.due_count += 1
        complete = all(g is not None for g in grads)
        if group.due_count % self.norms.keep_every == 0:
            norms = torch._foreach_norm(grads) if complete else [
                g.norm() if g is not None else missing_norm(p) for g, p in zip(grads, group.params)]
            self.norms.keep(group, norms, len(self.groups), self.dtype)
        if group.histogram_due:
            group.histogram_due = False
            self._grad_histograms(group, None)
        if group.due_count % SAMPLE_EVERY:
            return False
        self._arm(group, grads, complete)
        return True

    def _arm(self, group: Group, grads: list[torch.Tensor | None], complete: bool) -> None:
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

    def _update_ratio(self, group: Group, gap: int) -> tuple[torch.Tensor, list[int], int]:
        """The norms of ‖W - W_armed‖ and of ‖W‖ per tensor of the group, on the device, with the group's columns
        and `gap`; `settle` makes them the ratios ‖W - W_armed‖ / gap / ‖W‖."""
        group.weights_armed_at = None
        with torch.no_grad():
            weights = [p.detach() for p in group.params]
            differences = group.previous[:len(weights)]
            torch._foreach_sub_(differences, weights)  # the copies become the differences until the next arming
            norms = torch.stack(torch._foreach_norm(differences + weights))
        return norms, list(group.columns), gap

    def _noise(self, group: Group, grads: list[torch.Tensor | None]) -> None:
        """The gradient-noise pair: the armed reading's gradients against these ones."""
        group.grads_armed = False
        if any(g is None for g in grads):
            return
        size = len(group.params)
        with torch.no_grad():
            before = group.previous[size:]
            norms = [*torch._foreach_norm(grads), *torch._foreach_norm(before)]
            torch._foreach_sub_(before, grads)
            self.open_noise.append((torch.stack([*norms, *torch._foreach_norm(before)]), size))

    def _grad_histograms(self, group: Group, step: int | None) -> None:
        """Keep a strided sample of each tensor's gradient (a TensorBoard histogram costs milliseconds, far more
        than the copy, so they are written at the end). Samples taken in an optimizer hook get the next step."""
        with torch.no_grad():
            for index, param in zip(group.columns, group.params):
                if param.grad is not None:
                    taken = (f"grads/{self.names[index]}", sample(param.grad))
                    if step is None:
                        self.open_histograms.append(taken)
                    else:
                        self.histograms.append((taken[0], step, taken[1]))

    # -- the summary ------------------------------------------------------------------------------

    def summary(self, last_step: int) -> dict[str, Any]:
        """Global gradient norms (first, median, last), the noise-to-signal ratio, the update figures of all
        tensors, and per network where it was read, how many readings had a gradient, whether backward ever
        reached it and its update figures (`update_summary`); of the rows flushed so far."""
        norms = self.norms.norms()
        global_norm = np.sqrt(np.nansum(norms ** 2, axis=1))
        steps_run = last_step - (self.first_step or 0) + 1
        summary: dict[str, Any] = {
            "tensors": len(self.names), "parameters": int(sum(p.numel() for p in self.params)),
            "grad_norm_first": float(global_norm[0]) if len(norms) else None,
            "grad_norm_last": float(global_norm[-1]) if len(norms) else None,
            "grad_norm_median": float(np.median(global_norm)) if len(norms) else None,
            "lr": self.lr,
            "noise_to_signal": float(self.noise_sums[0] / self.noise_sums[1]) if self.noise_sums[1] > 0 else None,
            **update_summary(self.ratios, self.ratio_masks, self.ratio_steps, list(range(len(self.params))),
                             self.names, self.matrices, steps_run),
        }
        networks: dict[str, Any] = {}
        counts = self.norms.counts
        for name, columns in self.networks.items():
            group = next(g for g in self.groups if columns[0] in g.columns)
            hooked = group.optimizer is not None
            networks[name] = {
                "tensors": len(columns), "read_at": "optimizer step" if hooked else "Monitor.step",
                "lr": float(group.optimizer.param_groups[0]["lr"]) if hooked else self.lr,
                "optimizer_steps": group.calls if hooked else None, "readings": group.flushed,
                "readings_with_gradient": counts[name]["with_gradient"], "readings_unseen": counts[name]["unseen"],
                "gradient_arrived": bool(self.arrived[columns].any()),
                "other_networks_with_gradient": [
                    other for other, other_columns in self.networks.items() if other != name and (
                        self.arrived[other_columns].any() or counts[other]["with_gradient"])],
                "first_step": self.first_step, "last_step": last_step,
                "parameters": [self.names[i] for i in columns],
                **accumulation_summary(self.resets.verdicts.get(name, [])),
                **network_norms(norms[:, columns]),
                **update_summary(self.ratios, self.ratio_masks, self.ratio_steps, columns, self.names,
                                 self.matrices, group.calls if hooked else steps_run),
            }
        summary["networks"] = networks
        return summary


def update_summary(ratios: list[np.ndarray], masks: list[np.ndarray], ratio_steps: list[int], columns: list[int],
                   names: list[str], matrices: np.ndarray, steps_run: int) -> dict[str, Any]:
    """Update-to-weight figures of some tensors (one network, or all) over the measured updates that cover them:
    how many updates, how many left the weights unchanged or non-finite, whether they never moved, the median
    ratio of the weight matrices (`matrices`; all tensors where none is), what the whole run moves at that rate
    (`steps_run` steps), and each tensor's median ratio. `masks` says which tensors each update measured."""
    result: dict[str, Any] = {"update_samples": 0, "never_moved": False, "update_ratio_by_tensor": {}}
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
    return result


def network_norms(norms: np.ndarray) -> dict[str, float | None]:
    """One network's gradient norm (over its tensors) at its first and last reading with a gradient, and the
    median over the readings."""
    present = ~np.isnan(norms).all(axis=1) if norms.size else np.zeros(0, dtype=bool)
    total = np.sqrt(np.nansum(norms[present] ** 2, axis=1))
    if not len(total):
        return {"grad_norm_first": None, "grad_norm_median": None, "grad_norm_last": None}
    return {"grad_norm_first": float(total[0]), "grad_norm_median": float(np.median(total)),
            "grad_norm_last": float(total[-1])}


def sample(values: torch.Tensor) -> torch.Tensor:
    """An evenly strided subset of about HISTOGRAM_VALUES values (the histogram's shape at a bounded cost), on the
    CPU."""
    values = values.detach().reshape(-1)
    return values[:: max(1, values.numel() // HISTOGRAM_VALUES)].to(torch.float32, copy=True)


def matrix_mask(params: list[torch.Tensor]) -> np.ndarray:
    """Weight matrices and kernels (biases and norm scales can start at 0 and have no meaningful ratio); all
    tensors when there are none."""
    mask = np.array([p.dim() >= 2 for p in params])
    return mask if mask.any() else np.ones(len(params), dtype=bool)

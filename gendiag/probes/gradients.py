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

Gradient noise: for consecutive batch gradients g, g' (nearly the same weights) E‖g - g'‖²/2 estimates the trace of
the batch gradient's covariance and E[g·g'] the squared norm of the true gradient; their ratio is the noise-to-signal
ratio (above 1: a step's gradient is mostly noise).

Finding:
- `params-stalled`: the weights never changed between two `Monitor.step` calls (critical: the optimizer does not
  update them), or the median update-to-weight ratio of the weight matrices is below 1e-4 and, at that rate, the
  whole run moves them by less than 10% (warning; healthy training sits near 1e-3 per step, Adam with a learning
  rate of 1e-6 gives 1e-6 to 1e-4 depending on the layers' width).
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from gendiag.context import ProbeContext
from gendiag.figures import legend
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, ProbeSection, StepRecord
from gendiag.probes.thinning import LogStride

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


@register
class GradientsProbe(Probe):
    """Gradient norms, update-to-weight ratios and gradient noise of the watched networks; `params-stalled`."""

    name = "gradients"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []
        self.history = np.empty((HISTORY, 0))
        self.history_steps: list[int] = []
        self.pending: torch.Tensor | None = None  # (FLUSH_STEPS, tensors) norms not yet copied to the CPU
        self.pending_steps: list[int] = []
        self.pending_one_device = True
        self.keep_every = 1
        self.due_count = 0
        self.armed_at: int | None = None
        self.previous: list[torch.Tensor] = []  # copies of the weights, then of the gradients
        self.grads_complete = False
        self.matrices = np.ones(0, dtype=bool)
        self.ratio_steps: list[int] = []
        self.ratios: list[np.ndarray] = []
        self.noise_sums = np.zeros(2)  # sum of ‖g - g'‖²/2 and of g·g' over the measured pairs
        self.noise_steps: list[int] = []
        self.noise_ratios: list[float] = []
        self.next_histogram = 0.0
        self.histograms: list[tuple[str, int, torch.Tensor]] = []
        self.stride = LogStride(first=250)
        self.layer_stride = LogStride(budget=100, first=500)
        self.ratio_stride = LogStride(first=10)  # over measured updates (one per SAMPLE_EVERY due steps)
        self.logged_at: dict[str, int] = {}
        self.lr: float | None = None
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
                self.names.append(f"{name}.{param_name}")
                self.params.append(param)
        self.matrices = _matrix_mask(self.params)
        self.history = np.empty((HISTORY, len(self.params)))  # the set of tensors changed: start again
        self.history_steps, self.pending, self.pending_steps = [], None, []
        self.previous, self.armed_at = [], None

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if not self.params:
            return
        if "lr" in record.scalars:
            self.lr = record.scalars["lr"]
        if self.armed_at is not None:
            self._measure_update(ctx, record.step)
        if not self.due(record.step):
            return
        self.due_count += 1
        grads = [p.grad for p in self.params]
        complete = all(g is not None for g in grads)
        if self.due_count % self.keep_every == 0:
            norms = torch._foreach_norm(grads) if complete else [
                g.norm() if g is not None else _nan_norm(p) for g, p in zip(grads, self.params)]
            self._keep(norms, record.step)
            if len(self.pending_steps) >= FLUSH_STEPS:
                self._flush(ctx)
        if self.due_count % SAMPLE_EVERY == 0:
            self._arm(record.step, grads, complete)
        if record.step >= self.next_histogram:
            self._histograms(ctx, record.step, grads)
            self.next_histogram = max(record.step * HISTOGRAM_GROWTH, HISTOGRAM_SECOND)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        self._flush(ctx)
        if not self.history_steps:
            return None
        last_norms = self.history[len(self.history_steps) - 1]
        if self.logged_at.get("global") != self.history_steps[-1]:  # the last values, so short runs get a point
            self._log_global(ctx, self.history_steps[-1], last_norms)
        if self.logged_at.get("layers") != self.history_steps[-1]:
            self._log_layers(ctx, self.history_steps[-1], last_norms)
        if self.ratios and self.logged_at.get("update") != self.ratio_steps[-1]:
            self._log_update(ctx, self.ratio_steps[-1], self.ratios[-1])
        for tag, step, values in self.histograms:
            _histogram(ctx, tag, values, step)
        for name, param in zip(self.names, self.params):
            _histogram(ctx, f"weights/{name}", _sample(param), ctx.step)
        norms = self.history[: len(self.history_steps)]
        self.summary = _summarise(self.names, self.params, self.history_steps, norms, self.ratio_steps, self.ratios,
                                  self.noise_sums, self.lr)
        self.figure = ctx.save_figure(
            _figure(self.names, self.history_steps, norms, self.ratio_steps, self.ratios, self.noise_steps,
                    self.noise_ratios), "gradients")
        return ProbeSection(title="Gradients and updates", text=_text(self.summary), figures=[self.figure],
                            table=self.summary.pop("table"))

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not self.summary.get("stalled"):
            return []
        return [_stalled_finding(self.summary, self.figure)]

    def state(self) -> dict[str, Any]:
        return dict(self.summary)

    # -- per-step work ----------------------------------------------------------------------------

    def _keep(self, norms: list[torch.Tensor], step: int) -> None:
        """Write one due step's norms into the next row of the pending buffer (on their device)."""
        if not self.pending_steps:
            devices = {norm.device for norm in norms}
            self.pending_one_device = len(devices) == 1
            dtype = torch.float64 if any(norm.dtype == torch.float64 for norm in norms) else torch.float32
            if self.pending is None or (self.pending.device, self.pending.dtype) != (norms[0].device, dtype):
                self.pending = torch.empty(FLUSH_STEPS, len(norms), dtype=dtype, device=norms[0].device)
        if not self.pending_one_device:
            norms = [norm.to(self.pending.device) for norm in norms]
        torch.stack(norms, out=self.pending[len(self.pending_steps)])
        self.pending_steps.append(step)

    def _flush(self, ctx: ProbeContext) -> None:
        """Move the pending gradient norms into the history (one copy to the CPU) and log a few."""
        if not self.pending_steps:
            return
        rows = self.pending[: len(self.pending_steps)].to(dtype=torch.float64, device="cpu").numpy()
        steps, self.pending_steps = self.pending_steps, []
        for step, norms in zip(steps, rows):
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
                ctx.log_scalar(f"grad/norm/{name}", float(value), step)
        self.logged_at["layers"] = step

    def _log_update(self, ctx: ProbeContext, step: int, ratio: np.ndarray) -> None:
        ctx.log_scalar("grad/update_ratio", float(np.median(ratio[self.matrices])), step)
        if self.noise_ratios and math.isfinite(self.noise_ratios[-1]):
            ctx.log_scalar("grad/noise_to_signal", self.noise_ratios[-1], step)
        self.logged_at["update"] = step

    def _arm(self, step: int, grads: list[torch.Tensor | None], complete: bool) -> None:
        """Copy the weights (and gradients, for the noise pair) so that the next step's update can be measured."""
        with torch.no_grad():
            weights = [p.detach() for p in self.params]
            if not self.previous:
                self.previous = [torch.empty_like(w) for w in weights + weights]
            self.grads_complete = complete
            size = len(weights)
            if complete:
                torch._foreach_copy_(self.previous, weights + grads)
            else:
                torch._foreach_copy_(self.previous[:size], weights)
        self.armed_at = step

    def _measure_update(self, ctx: ProbeContext, step: int) -> None:
        """Update-to-weight ratio per tensor since the armed step, and the gradient-noise pair. Norm layout with the
        pair (P tensors): Δw, Δg, w, g, g_prev, P values each; without it: Δw, w."""
        gap = max(step - self.armed_at, 1)
        self.armed_at = None
        size = len(self.params)
        with torch.no_grad():
            weights = [p.detach() for p in self.params]
            grads = [p.grad for p in self.params]
            pair = self.grads_complete and all(g is not None for g in grads)
            current = weights + grads if pair else weights
            previous_grad_norms = torch._foreach_norm(self.previous[size:]) if pair else []
            differences = self.previous[: len(current)]
            torch._foreach_sub_(differences, current)  # the copies become the differences until the next arming
            norms = torch.stack([*torch._foreach_norm(differences + current), *previous_grad_norms])
            norms = norms.to(dtype=torch.float64, device="cpu").numpy()
        update, weight = norms[:size], norms[len(current): len(current) + size]
        ratio = update / gap / np.maximum(weight, 1e-30)
        if pair:
            gradient_change = np.square(norms[size: 2 * size]).sum()
            now, before = np.square(norms[3 * size: 4 * size]).sum(), np.square(norms[4 * size:]).sum()
            sums = np.array([gradient_change / 2, (now + before - gradient_change) / 2])
            if np.isfinite(sums).all():
                self.noise_sums += sums
                self.noise_steps.append(step)
                self.noise_ratios.append(float(self.noise_sums[0] / self.noise_sums[1])
                                         if self.noise_sums[1] > 0 else math.inf)
        self.ratio_steps.append(step)
        self.ratios.append(ratio)
        if self.ratio_stride.take(len(self.ratio_steps)):
            self._log_update(ctx, step, ratio)

    def _histograms(self, ctx: ProbeContext, step: int, grads: list[torch.Tensor | None]) -> None:
        """Keep a strided sample of each tensor's weights and gradients; `finish` writes the histograms (a
        TensorBoard histogram costs milliseconds, far more than the copy)."""
        with torch.no_grad():
            for name, param, grad in zip(self.names, self.params, grads):
                self.histograms.append((f"weights/{name}", step, _sample(param)))
                if grad is not None:
                    self.histograms.append((f"grads/{name}", step, _sample(grad)))


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


def _nan_norm(like: torch.Tensor) -> torch.Tensor:
    """A NaN norm for a tensor without a gradient at this step."""
    return torch.full((), float("nan"), device=like.device)


def _median_per_tensor(norms: np.ndarray) -> np.ndarray:
    """Median over steps of each tensor's gradient norm, ignoring steps without a gradient (NaN when none)."""
    return pd.DataFrame(norms).median().to_numpy()


def _matrix_mask(params: list[torch.Tensor]) -> np.ndarray:
    """Weight matrices and kernels (biases and norm scales can start at 0 and have no meaningful ratio); all
    tensors when there are none."""
    mask = np.array([p.dim() >= 2 for p in params])
    return mask if mask.any() else np.ones(len(params), dtype=bool)


def _summarise(names: list[str], params: list[torch.Tensor], steps: list[int], norms: np.ndarray,
               ratio_steps: list[int], ratios: list[np.ndarray], noise_sums: np.ndarray,
               lr: float | None) -> dict[str, Any]:
    global_norm = np.sqrt(np.nansum(norms ** 2, axis=1))
    summary: dict[str, Any] = {
        "tensors": len(names), "parameters": int(sum(p.numel() for p in params)),
        "grad_norm_first": float(global_norm[0]), "grad_norm_last": float(global_norm[-1]),
        "grad_norm_median": float(np.nanmedian(global_norm)), "lr": lr, "stalled": False,
        "noise_to_signal": float(noise_sums[0] / noise_sums[1]) if noise_sums[1] > 0 else None,
        "update_samples": len(ratios),
    }
    table = pd.DataFrame({"grad norm (median)": _median_per_tensor(norms), "grad norm (last)": norms[-1],
                          "weight norm": [float(p.detach().norm()) for p in params]},
                         index=pd.Index(names, name="tensor"))
    if ratios:
        matrix = np.stack(ratios)
        finite = np.isfinite(matrix).all(axis=1)
        moved = finite & (matrix > 0).any(axis=1)
        mask = _matrix_mask(params)
        per_sample = np.median(matrix[:, mask], axis=1)
        table["update / weight (median)"] = np.median(matrix[moved], axis=0) if moved.any() else 0.0
        median_ratio = float(np.median(per_sample[moved])) if moved.any() else 0.0
        summary.update(
            update_ratio_median=median_ratio, zero_update_samples=int((finite & ~moved).sum()),
            nonfinite_update_samples=int((~finite).sum()), never_moved=bool(finite.any() and not moved.any()),
            first_update_step=ratio_steps[0], last_update_step=ratio_steps[-1],
            update_ratio_by_tensor={n: float(v) for n, v in zip(names, table["update / weight (median)"])},
            movement_over_run=median_ratio * (steps[-1] - steps[0] + 1),
        )
        slow = moved.any() and median_ratio < STALLED_RATIO and summary["movement_over_run"] < STALLED_MOVEMENT
        summary["stalled"] = bool(finite.sum() >= MIN_SAMPLES and (summary["never_moved"] or slow))
    summary["table"] = table
    return summary


def _stalled_finding(summary: dict[str, Any], figure: str | None) -> Finding:
    lr = f" (learning rate {summary['lr']:g})" if summary.get("lr") is not None else ""
    evidence = {k: summary[k] for k in ("update_ratio_median", "zero_update_samples", "nonfinite_update_samples",
                                        "update_samples", "first_update_step", "last_update_step",
                                        "movement_over_run")}
    if summary["lr"] is not None:
        evidence["lr"] = summary["lr"]
    evidence["healthy_update_ratio"] = list(HEALTHY_RATIO)
    evidence["update_ratio_by_tensor"] = {name: float(f"{ratio:.4g}")
                                          for name, ratio in summary["update_ratio_by_tensor"].items()}
    if summary["never_moved"]:
        return Finding(
            code="params-stalled", severity="critical", title="The weights never change",
            message=(f"In all {summary['zero_update_samples']} measured steps with finite weights (steps "
                     f"{summary['first_update_step']}–{summary['last_update_step']}) the watched weights were "
                     f"exactly the same as one step before{lr}: nothing trains."),
            evidence=evidence,
            suggestion=("Call optimizer.step() after loss.backward(), pass the model's parameters to the optimizer "
                        "(not a copy's), and check that the learning rate is not 0."),
            figure=figure,
        )
    return Finding(
        code="params-stalled", severity="warning", title="The weights barely move",
        message=(f"A step changes the weight matrices by a median {summary['update_ratio_median']:.2g} of their "
                 f"size{lr}, against about 1e-3 in healthy training (1e-4 to 1e-2). At that rate the whole run "
                 f"moves them by at most {summary['movement_over_run']:.2%} of their size."),
        evidence=evidence,
        suggestion="Raise the learning rate (Adam: 1e-4 to 1e-3 is a usual start) and check any scheduler's factor.",
        figure=figure,
    )


def _figure(names: list[str], steps: list[int], norms: np.ndarray, ratio_steps: list[int],
            ratios: list[np.ndarray], noise_steps: list[int], noise_ratios: list[float]) -> plt.Figure:
    figure, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    shown = min(len(names), 12)
    order = np.argsort(-np.nan_to_num(_median_per_tensor(norms), nan=-1.0))[:shown]
    for index in order:
        axes[0].plot(steps, norms[:, index], lw=0.8, alpha=0.7, label=names[index])
    axes[0].plot(steps, np.sqrt(np.nansum(norms ** 2, axis=1)), color="k", lw=1.4, label="global")
    axes[0].set_yscale("log")
    axes[0].set_title("gradient norm per tensor" + (f" ({shown} largest)" if shown < len(names) else ""))
    axes[0].set_xlabel("step")
    legend(axes[0], fontsize=6, ncol=2)
    if ratios:
        matrix = np.stack(ratios)
        for index in order:
            axes[1].plot(ratio_steps, np.where(matrix[:, index] > 0, matrix[:, index], np.nan), lw=0.8, alpha=0.7)
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
    lines = [f"{summary['tensors']} parameter tensors ({summary['parameters']:,} values). Global gradient norm: "
             f"{summary['grad_norm_first']:.3g} at the first recorded step, median {summary['grad_norm_median']:.3g}, "
             f"{summary['grad_norm_last']:.3g} at the last."]
    if summary["update_samples"]:
        lines.append(f"Median update-to-weight ratio of the weight matrices over {summary['update_samples']} measured "
                     f"steps: {summary['update_ratio_median']:.3g} (healthy about 1e-3); "
                     f"{summary['zero_update_samples']} of them left the weights unchanged.")
    if summary["noise_to_signal"] is not None:
        lines.append(f"Gradient noise-to-signal ratio (batch-gradient variance over squared mean gradient): "
                     f"{summary['noise_to_signal']:.3g}" + (" — a step's gradient is mostly noise." if
                                                         summary["noise_to_signal"] > 1 else "."))
    return " ".join(lines)

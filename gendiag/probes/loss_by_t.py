"""The loss by time t (flow matching and diffusion): per bin of t the loss mean, its variance and each bin's share
of the expected loss and of the loss variance, over training; and how the loss (or the regression target's size)
grows toward either end of [0, 1].

Per due step the probe only keeps a reference to the step's detached `t` and `per_sample_loss` (no copy: a loop
that overwrites one t tensor in place would alias them); every 64 due steps one batch of tensor operations and
one `index_add_` fold them into a small float64 buffer of counts, sums and sums of squares: ten equal bins of t,
plus geometric bins toward each end (t in [1 - 2^-k, 1 - 2^-(k+1)) near 1, and mirrored near 0) for the tail
fit. The buffer is started afresh every 64 due steps (chunks merge pairwise, so at most 64 are kept) to show how
the picture changes over training.

Float times in [0, 1] are used as they are; integer (or larger) diffusion timesteps are mapped to [0, 1] by T - 1,
with T = len(schedule) when the Monitor was given the `schedule` fact, else T = the power of ten above the largest
timestep of the first 64 steps.

If the loop passes `target_norm=` (a per-sample tensor, the size of the regression target) to `Monitor.step`,
the tail fit uses the target's squared size instead of the loss, so it measures the target alone.

Findings:
- `loss-t-imbalance` (warning): in the second half of training one tenth of the t range carries at least 80% of
  the expected loss or 90% of the loss variance. (A healthy 2D flow-matching run spreads both near 10% per bin; a
  healthy epsilon-prediction DDPM puts about 45% of the loss and 65% of its variance on the least noisy tenth.)
- `target-explodes` (critical when the loss grows at least like (1 - t)^-1.5, warning from (1 - t)^-0.75): a
  least-squares fit of log mean loss against log(1 - t) over the geometric bins with t >= 1/2 (and mirrored
  against log t near 0), and the loss in the outermost bins at least 10 times the median over t.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding, advice
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection
from gendiag.probes.thinning import LogStride

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BINS = 10
TAIL_BINS = 16  # geometric bins toward each end: down to a distance of 2^-16 from it
STATS = 4  # rows of the buffer: count, sum of loss, sum of squared loss, sum of squared target size
FLUSH_STEPS = 64  # due steps whose (t, loss) tensors are kept before they are binned in one go
CHUNK_STEPS = 64
MAX_CHUNKS = 64
LOSS_SHARE = 0.8
VARIANCE_SHARE = 0.9
TAIL_MIN_COUNT = 10
TAIL_MIN_BINS = 3
EXPLODES_WARNING = -0.75
EXPLODES_CRITICAL = -1.5
TAIL_RATIO = 10.0


@register
class LossByTProbe(Probe):
    """Loss mean, variance and their shares per bin of t; `loss-t-imbalance`, `target-explodes`."""

    name = "loss_by_t"
    tasks = ("flow", "diffusion")

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.scale: float | None = None
        self.chunks: list[torch.Tensor] = []
        self.chunk_steps: list[tuple[int, int]] = []
        self.chunk_length = CHUNK_STEPS
        self.current = torch.zeros(STATS, BINS + 2 * TAIL_BINS, dtype=torch.float64)
        self.current_first: int | None = None
        self.current_count = 0
        self.has_target = False
        self.closed_chunks = 0
        self.logged_chunks = 0
        self.log_stride = LogStride(budget=125, first=8)  # over closed chunks: TensorBoard every 8th chunk at first
        self.pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        self.summary: dict[str, Any] = {}
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("loss_by_t", "mean loss per t bin", ["loss_by_t/mean/.*"])
        ctx.add_chart("loss_by_t", "largest share of the loss variance in one t bin",
                      ["loss_by_t/largest_variance_share"])

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if record.t is None or record.per_sample_loss is None or not self.due(record.step):
            return
        t, loss, target = record.t, record.per_sample_loss, record.tensors.get("target_norm")
        if t.numel() != loss.numel():
            raise ValueError(f"loss_by_t: t has {t.numel()} values but per_sample_loss has {loss.numel()} at step "
                             f"{record.step}; expected one t per sample")
        if target is not None and target.numel() != loss.numel():
            raise ValueError(f"loss_by_t: target_norm has {target.numel()} values but per_sample_loss has "
                             f"{loss.numel()} at step {record.step}; expected one per sample")
        self.pending.append((t, loss, target))
        if self.current_first is None:
            self.current_first = record.step
        self.current_count += 1
        if len(self.pending) >= FLUSH_STEPS:
            self._flush(ctx)
        if self.current_count >= self.chunk_length:
            self._close_chunk(ctx, record.step)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if self.current_count:
            self._close_chunk(ctx, ctx.step)
        if not self.chunks:
            return None
        if self.logged_chunks != self.closed_chunks:  # the last chunk, so short runs get a point too
            _log_chunk(ctx, self.chunks[-1], self.chunk_steps[-1][1])
        self.summary = _summarise(self.chunks, self.chunk_steps, self.has_target)
        self.figure = ctx.save_figure(_figure(self.summary, self.chunks, self.chunk_steps), "loss_by_t")
        return ProbeSection(title="Loss by t", text=_text(self.summary), figures=[self.figure],
                            table=self.summary["table"])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not self.summary:
            return []
        found = []
        if self.summary["imbalanced"]:
            found.append(_imbalance_finding(self.summary, self.figure))
        for end in self.summary["tails"]:
            if end["explodes"]:
                found.append(_explodes_finding(end, self.figure, ctx.task))
        return found

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in self.summary.items() if k != "table"}

    def _flush(self, ctx: ProbeContext) -> None:
        """Fold the pending steps' (t, loss) pairs into the current chunk with one batch of tensor operations."""
        if not self.pending:
            return
        t = torch.cat([_flat(p[0]) for p in self.pending])
        loss = torch.cat([_flat(p[1]) for p in self.pending]).double()
        if any(p[2] is not None for p in self.pending):
            self.has_target = True
            size = torch.cat([_flat(p[2]).double().square() if p[2] is not None
                              else torch.zeros(p[1].numel(), dtype=torch.float64, device=loss.device)
                              for p in self.pending])
        else:
            size = torch.zeros_like(loss)
        self.pending = []
        if self.scale is None:
            self.scale = _time_scale(t, ctx.facts.get("schedule"))
        u = (t.double() / self.scale).clamp_(0.0, 1.0)
        finite = torch.isfinite(loss) & torch.isfinite(size)
        if not bool(finite.all()):
            u, loss, size = u[finite], loss[finite], size[finite]
        linear = (u * BINS).long().clamp_(max=BINS - 1)
        near_one = (-torch.log2(1 - u).clamp_(min=-TAIL_BINS)).long().clamp_(max=TAIL_BINS - 1)
        near_zero = (-torch.log2(u).clamp_(min=-TAIL_BINS)).long().clamp_(max=TAIL_BINS - 1)
        index = torch.cat([linear, near_one + BINS, near_zero + BINS + TAIL_BINS])
        values = torch.stack([torch.ones_like(loss), loss, loss * loss, size]).repeat(1, 3)
        self.current.index_add_(1, index.cpu(), values.cpu())

    def _close_chunk(self, ctx: ProbeContext, step: int) -> None:
        """Keep the current chunk, log its per-bin means, merge old chunks pairwise when there are too many."""
        self._flush(ctx)
        stats = self.current
        self.chunks.append(stats)
        self.chunk_steps.append((self.current_first if self.current_first is not None else step, step))
        self.closed_chunks += 1
        if self.log_stride.take(self.closed_chunks):
            _log_chunk(ctx, stats, step)
            self.logged_chunks = self.closed_chunks
        self.current = torch.zeros_like(self.current)
        self.current_first = None
        self.current_count = 0
        if len(self.chunks) > MAX_CHUNKS:
            self.chunks = [a + b for a, b in zip(self.chunks[::2], self.chunks[1::2])] + (
                [self.chunks[-1]] if len(self.chunks) % 2 else [])
            self.chunk_steps = [(a[0], b[1]) for a, b in zip(self.chunk_steps[::2], self.chunk_steps[1::2])] + (
                [self.chunk_steps[-1]] if len(self.chunk_steps) % 2 else [])
            self.chunk_length *= 2


def _log_chunk(ctx: ProbeContext, stats: torch.Tensor, step: int) -> None:
    """A chunk's mean loss per bin of t and the largest share of the loss variance, to TensorBoard."""
    count, total, squares = stats[0, :BINS], stats[1, :BINS], stats[2, :BINS]
    mean = total / count.clamp(min=1)
    shares = _variance_shares(count, mean, squares / count.clamp(min=1) - mean.square())
    for b in range(BINS):
        if count[b] > 0:
            ctx.log_scalar(f"loss_by_t/mean/t{b / BINS:.1f}-{(b + 1) / BINS:.1f}", float(mean[b]), step)
    ctx.log_scalar("loss_by_t/largest_variance_share", float(shares.max()), step)


def _rounded(values: list[float]) -> list[float]:
    """Four significant digits, for evidence a person reads."""
    return [float(f"{v:.4g}") for v in values]


def _flat(values: torch.Tensor) -> torch.Tensor:
    return values if values.dim() == 1 else values.reshape(-1)


def _time_scale(t: torch.Tensor, schedule: Any) -> float:
    """What t is divided by to lie in [0, 1]: 1 for float times in [0, 1], else T - 1 for timesteps 0..T-1 (T from
    the schedule, else the power of ten above the largest timestep seen)."""
    top = float(t.max())
    if t.is_floating_point() and top <= 1.0:
        return 1.0
    if schedule is not None:
        return float(len(schedule) - 1)
    return float(10 ** math.ceil(math.log10(top + 1)) - 1) if top > 0 else 1.0


def _variance_shares(count: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """Each bin's part of the total loss variance (within-bin variance plus its mean's distance to the overall
    mean, weighted by the bin's frequency)."""
    weight = count / count.sum().clamp(min=1)
    overall = (weight * mean).sum()
    parts = weight * (variance.clamp(min=0) + (mean - overall).square())
    return parts / parts.sum().clamp(min=1e-300)


def _summarise(chunks: list[torch.Tensor], chunk_steps: list[tuple[int, int]], has_target: bool) -> dict[str, Any]:
    """Per-bin statistics over the second half of training, the shares and the fits toward both ends."""
    late_from = chunk_steps[len(chunk_steps) // 2][0]
    late = torch.stack([c for c, (first, _) in zip(chunks, chunk_steps) if first >= late_from]).sum(0).numpy()
    count, total, squares, size = late
    mean = total / np.maximum(count, 1)
    variance = np.maximum(squares / np.maximum(count, 1) - mean ** 2, 0)
    linear = slice(0, BINS)
    populated = count[linear] > 0
    # shares of the expected loss under uniform t: the t range's part of the integral of E[loss | t]
    loss_share = np.where(populated, mean[linear], 0) / max(float(np.where(populated, mean[linear], 0).sum()), 1e-300)
    variance_share = _variance_shares(torch.from_numpy(count[linear]), torch.from_numpy(mean[linear]),
                                      torch.from_numpy(variance[linear])).numpy()
    worst_loss, worst_var = int(np.argmax(loss_share)), int(np.argmax(variance_share))
    median_loss = float(np.median(mean[linear][populated])) if populated.any() else float("nan")
    measured = (size if has_target else total) / np.maximum(count, 1)
    median_measured = float(np.median(measured[linear][populated])) if populated.any() else float("nan")
    tails = [_tail(count, measured, BINS + offset, end, median_measured, has_target)
             for offset, end in ((0, "t -> 1"), (TAIL_BINS, "t -> 0"))]
    labels = [f"{b / BINS:.1f}–{(b + 1) / BINS:.1f}" for b in range(BINS)]
    table = pd.DataFrame({"samples": count[linear].astype(int), "mean loss": mean[linear],
                          "loss std": np.sqrt(variance[linear]), "share of loss": loss_share,
                          "share of variance": variance_share}, index=pd.Index(labels, name="t"))
    return {
        "late_steps": [int(late_from), int(chunk_steps[-1][1])], "samples": int(count[linear].sum()),
        "bin_mean": mean[linear].tolist(), "bin_std": np.sqrt(variance[linear]).tolist(),
        "loss_share": loss_share.tolist(), "variance_share": variance_share.tolist(),
        "worst_loss_bin": labels[worst_loss], "worst_loss_share": float(loss_share[worst_loss]),
        "worst_variance_bin": labels[worst_var], "worst_variance_share": float(variance_share[worst_var]),
        "imbalanced": bool(loss_share[worst_loss] >= LOSS_SHARE or variance_share[worst_var] >= VARIANCE_SHARE),
        "median_bin_loss": median_loss, "tails": tails, "table": table,
    }


def _tail(count: np.ndarray, measured_all: np.ndarray, start: int, end: str, median: float,
          has_target: bool) -> dict[str, Any]:
    """Fit log(mean) = a + b log(distance to the end) over the geometric bins at distance <= 1/2, for the loss
    (or the squared target size); `median` is that quantity's median over the equal bins of t."""
    k = np.arange(1, TAIL_BINS)
    n = count[start + k]
    measured = measured_all[start + k]
    keep = (n >= TAIL_MIN_COUNT) & (measured > 0)
    distance = 2.0 ** -(k + 0.5)
    result: dict[str, Any] = {"end": end, "quantity": "squared target size" if has_target else "loss",
                              "explodes": False, "slope": None}
    if keep.sum() < TAIL_MIN_BINS:
        return result
    x, y = np.log(distance[keep]), np.log(measured[keep])
    slope, intercept = np.polyfit(x, y, 1)
    outer = int(np.flatnonzero(keep)[-1])
    outer_value = float(measured[outer])
    ratio = outer_value / median if median > 0 else float("inf")
    severity = "critical" if slope <= EXPLODES_CRITICAL else "warning"
    result.update(
        slope=float(slope), intercept=float(intercept), distances=distance[keep].tolist(),
        values=measured[keep].tolist(), counts=n[keep].astype(int).tolist(),
        outer_distance=float(2.0 ** -(k[outer] + 1)), outer_value=outer_value, outer_ratio=float(ratio), median=median,
        severity=severity, explodes=bool(slope <= EXPLODES_WARNING and ratio >= TAIL_RATIO),
    )
    return result


def _imbalance_finding(summary: dict[str, Any], figure: str | None) -> Finding:
    return Finding(
        code="loss-t-imbalance", severity="warning",
        title="A few values of t carry most of the loss",
        message=(f"In steps {summary['late_steps'][0]}–{summary['late_steps'][1]}, the t range "
                 f"{summary['worst_loss_bin']} carries {summary['worst_loss_share']:.0%} of the expected loss and "
                 f"{summary['worst_variance_bin']} carries {summary['worst_variance_share']:.0%} of the loss "
                 f"variance, where an even spread over {BINS} bins would give 10% each. Gradients are then dominated "
                 "by those t and the rest of the path is learned slowly."),
        evidence={"steps": summary["late_steps"], "worst_loss_bin": summary["worst_loss_bin"],
                  "worst_loss_share": summary["worst_loss_share"], "worst_variance_bin": summary["worst_variance_bin"],
                  "worst_variance_share": summary["worst_variance_share"],
                  "loss_share_by_bin": _rounded(summary["loss_share"]),
                  "variance_share_by_bin": _rounded(summary["variance_share"]),
                  "mean_loss_by_bin": _rounded(summary["bin_mean"])},
        suggestion=("Check the target's scale over t (a target divided by 1 - t or by sigma grows without bound); "
                    "weight the loss per t (e.g. by 1/E[loss | t]) or sample t where the loss is informative."),
        figure=figure,
    )


EXPLODES_ADVICE = {  # `target-explodes`, by task
    "flow": ("Regress on a bounded target: for the linear path x_t = t·x1 + (1 - t)·x0 the conditional velocity is "
             "x1 - x0 (no division by 1 - t); if the formula must divide, evaluate it at x_t, not x0, and draw t from "
             "[0, 1 - eps]."),
    "diffusion": ("Regress on a bounded target: the noise ε (or v = sqrt(ᾱ_t)·ε - sqrt(1 - ᾱ_t)·x0), not the score "
                  "-ε / sqrt(1 - ᾱ_t), which grows without bound where ᾱ_t → 1, nor x0 recovered by dividing by "
                  "sqrt(ᾱ_t), which does where ᾱ_t → 0; a loss weight that divides by either needs clipping."),
    "generic": ("Regress on a target that stays bounded over t: find the division by a quantity that reaches 0 at "
                "one end of t (1 - t, t, sigma) and remove it, clip it, or keep t away from that end."),
}


def _explodes_finding(tail: dict[str, Any], figure: str | None, task: str) -> Finding:
    end = tail["end"]
    near = "1 - t" if end == "t -> 1" else "t"
    return Finding(
        code="target-explodes", severity=tail["severity"],
        title=f"The regression target grows without bound as {end.replace('->', '→')}",
        message=(f"The {tail['quantity']} grows like ({near})^{tail['slope']:.2f} as {end} (least-squares fit of "
                 f"log mean against log({near}) over {len(tail['counts'])} geometric bins). At {near} ≈ "
                 f"{tail['outer_distance']:.2g} its mean is {tail['outer_value']:.4g}, "
                 f"{tail['outer_ratio']:.3g}× its median over t ({tail['median']:.4g}). "
                 + ("With an exponent at or below -1 the expected loss over t is infinite: a few samples near the "
                    "end decide every step." if tail["slope"] <= -1 else
                    "The loss near the end dominates its variance.")),
        evidence={"end": end, "exponent": tail["slope"], "fit_distances": _rounded(tail["distances"]),
                  "fit_values": _rounded(tail["values"]), "fit_counts": tail["counts"],
                  "outer_distance": tail["outer_distance"],
                  "outer_value": tail["outer_value"], "ratio_to_median": tail["outer_ratio"],
                  "median_over_t": tail["median"], "quantity": tail["quantity"]},
        suggestion=advice(EXPLODES_ADVICE, task),
        figure=figure,
    )


def _figure(summary: dict[str, Any], chunks: list[torch.Tensor], chunk_steps: list[tuple[int, int]]) -> Figure:
    figure, axes = new_figure(1, 3, figsize=(14, 3.8))
    centers = (np.arange(BINS) + 0.5) / BINS
    width = 0.9 / BINS
    mean, std = np.array(summary["bin_mean"]), np.array(summary["bin_std"])
    axes[0].bar(centers, mean, width=width, color="tab:blue", alpha=0.7, label="mean loss")
    axes[0].errorbar(centers, mean, yerr=std, fmt="none", ecolor="k", lw=0.8, label="± std")
    axes[0].set_title(f"loss by t (steps {summary['late_steps'][0]}–{summary['late_steps'][1]})")
    if mean.min() > 0 and mean.max() / mean.min() > 20:
        axes[0].set_yscale("log")
    axes[1].bar(centers - width / 4, summary["loss_share"], width=width / 2, label="share of loss")
    axes[1].bar(centers + width / 4, summary["variance_share"], width=width / 2, label="share of variance")
    axes[1].axhline(1 / BINS, color="gray", ls=":", lw=1, label="even spread")
    axes[1].set_title("each t bin's share")
    for axis in axes[:2]:
        axis.set_xlabel("t")
        legend(axis, fontsize=8)
    matrix = np.stack([(c[1, :BINS] / c[0, :BINS].clamp(min=1)).numpy() for c in chunks])
    positive = matrix[matrix > 0]
    shown = np.log10(np.where(matrix > 0, matrix, np.nan)) if len(positive) else matrix
    image = axes[2].imshow(shown.T, origin="lower", aspect="auto", cmap="viridis",
                           extent=(chunk_steps[0][0], chunk_steps[-1][1], 0, 1))
    figure.colorbar(image, ax=axes[2], label="log10 mean loss" if len(positive) else "mean loss")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("t")
    axes[2].set_title("mean loss by t over training")
    figure.tight_layout()
    return figure


def _text(summary: dict[str, Any]) -> str:
    lines = [f"{summary['samples']} samples in steps {summary['late_steps'][0]}–{summary['late_steps'][1]} (the "
             f"second half of training), in {BINS} bins of t. The largest share of the expected loss is "
             f"{summary['worst_loss_share']:.0%} (t {summary['worst_loss_bin']}), the largest share of its variance "
             f"{summary['worst_variance_share']:.0%} (t {summary['worst_variance_bin']}); an even spread is 10%."]
    for tail in summary["tails"]:
        if tail["slope"] is not None:
            near = "1 - t" if tail["end"] == "t -> 1" else "t"
            lines.append(f"As {tail['end']} the {tail['quantity']} scales like ({near})^{tail['slope']:.2f}; at "
                         f"{near} ≈ {tail['outer_distance']:.2g} it is {tail['outer_ratio']:.3g}× the median "
                         "over t.")
    return " ".join(lines)

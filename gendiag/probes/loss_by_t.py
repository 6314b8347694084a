"""The loss by time t (flow matching and diffusion): per bin of t the loss mean, its variance and each bin's share
of the expected loss and of the loss variance, over training; and how the loss (or the regression target's size)
grows toward either end of [0, 1].

Per due step the probe only keeps a reference to the step's detached `t` and `per_sample_loss` (no copy: a loop
that overwrites one t tensor in place would alias them); every 64 due steps one batch of tensor operations and
one `index_add_` fold them into a small float64 buffer of counts, sums and sums of squares: ten equal bins of t,
plus geometric bins toward each end (t in [1 - 2^-k, 1 - 2^-(k+1)) near 1, and mirrored near 0) for the tail
fit. The buffer is started afresh every 64 due steps (chunks merge pairwise, so at most 64 are kept) to show how
the picture changes over training. The measurement is `gendiag.quantities.loss_by_t`, the rules
`gendiag.rules.loss_by_t`, the figure `gendiag.figures.loss_by_t`.

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

from typing import Any

import torch

from gendiag.context import ProbeContext
from gendiag.figures.loss_by_t import loss_by_t_figure, loss_by_t_text
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection
from gendiag.quantities.loss_by_t import BINS, TimeBinnedLoss, summarise_loss_by_t, variance_shares
from gendiag.rules.loss_by_t import judge_bins, loss_by_t_findings

FLUSH_STEPS = 64  # due steps whose (t, loss) tensors are kept before they are binned in one go
FIGURE = "loss_by_t"


@register
class LossByTProbe(Probe):
    """Loss mean, variance and their shares per bin of t; `loss-t-imbalance`, `target-explodes`."""

    name = "loss_by_t"
    tasks = ("flow", "diffusion")

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.bins = TimeBinnedLoss()
        self.summary: dict[str, Any] = {}
        self.cached: tuple[tuple[int, int], dict[str, Any]] | None = None  # ((steps added, last step), summary)

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
        bins = self.bins
        bins.add(record.step, t, loss, target)
        if len(bins.pending) >= FLUSH_STEPS:
            bins.flush(ctx.facts.get("schedule"))
        if bins.current_count >= bins.chunk_length:
            self._close_chunk(ctx, record.step)

    def _close_chunk(self, ctx: ProbeContext, step: int) -> None:
        stats = self.bins.close_chunk(step, ctx.facts.get("schedule"))
        _log_chunk(ctx, stats, step)

    def _judged(self, ctx: ProbeContext) -> dict[str, Any] | None:
        """The judged summary of everything gathered so far (the open chunk ending at the current step), computed
        once per number of steps added and step; None before any step."""
        key = (self.bins.added, ctx.step if self.bins.current_count else -1)
        if self.cached is None or self.cached[0] != key:
            chunks, chunk_steps, has_target = self.bins.snapshot(ctx.step, ctx.facts.get("schedule"))
            if not chunks:
                return None
            self.cached = (key, judge_bins(summarise_loss_by_t(chunks, chunk_steps, has_target)))
        return self.cached[1]

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if self.bins.current_count:
            self._close_chunk(ctx, ctx.step)
        if not self.bins.chunks:
            return None
        judged = self._judged(ctx)
        self.summary = {k: v for k, v in judged.items() if k != "table"}
        ctx.save_figure(loss_by_t_figure(judged, self.bins.chunks, self.bins.chunk_steps), FIGURE)
        return ProbeSection(title="Loss by t", text=loss_by_t_text(judged), figures=[f"figures/{FIGURE}.png"],
                            table=judged["table"])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        judged = self._judged(ctx)
        return [] if judged is None else loss_by_t_findings(judged, f"figures/{FIGURE}.png", ctx.task)

    def state(self) -> dict[str, Any]:
        return self.summary


def _log_chunk(ctx: ProbeContext, stats: torch.Tensor, step: int) -> None:
    """A chunk's mean loss per bin of t and the largest share of the loss variance, to TensorBoard."""
    count, total, squares = stats[0, :BINS], stats[1, :BINS], stats[2, :BINS]
    mean = total / count.clamp(min=1)
    shares = variance_shares(count, mean, squares / count.clamp(min=1) - mean.square())
    for b in range(BINS):
        if count[b] > 0:
            ctx.log_scalar(f"loss_by_t/mean/t{b / BINS:.1f}-{(b + 1) / BINS:.1f}", float(mean[b]), step)
    ctx.log_scalar("loss_by_t/largest_variance_share", float(shares.max()), step)

"""The training loss over steps: running mean and spread, the trend over windows, spikes, oscillation that grows,
non-finite values.

Per step it appends one float (and updates an exponential running mean and variance, logged to every sink at each
step); the window statistics (`gendiag.quantities.loss`) and the rules (`gendiag.rules.loss`) run
when findings are asked for, the figure (`gendiag.figures.loss`) in `finish`.

Findings:
- `loss-nonfinite` (critical): the loss was NaN or infinite at some step; so was a named loss of `mon.step`
  (`loss_d`, `loss_g`, any `loss_*`), checked exactly like `loss` (the finding names it).
- `loss-unbounded-below` (critical): the loss falls below 0 and keeps falling without slowing down, to 10 times
  its starting scale below where it began, or lies 1000 times its starting scale below it however it got there;
  the reported term (`mon.step(..., kl=...)`, or the KL of `observe_latents`) that has no floor is named where one
  explains the fall. Not for a Wasserstein critic (`d_output="critic"`), whose loss has no floor by design.
- `loss-diverging` (warning; info for GANs, whose losses are not minimised): after its lowest window the loss
  trends up to at least twice that level (or blows up tenfold in some window), or its step-to-step oscillation
  grows at least fourfold over the run.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gendiag.context import ProbeContext
from gendiag.figures.loss import LOSS_CAPTION, loss_figure, loss_text
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection
from gendiag.quantities.loss import INTERNAL, LossSeries, LossTerms, NamedLosses, latent_kl
from gendiag.rules.loss import judge_trend, loss_findings, named_nonfinite_finding

FIGURE = "loss_curve"


@register
class LossProbe(Probe):
    """Running mean and variance of the loss, its trend, spikes and non-finite values."""

    name = "loss"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.series = LossSeries()
        self.terms = LossTerms()
        self.named = NamedLosses()
        self.critic = False  # a Wasserstein critic's loss (d_output="critic") has no floor by design
        self.logged_at: int | None = None
        self.cached: tuple[int, dict[str, Any]] | None = None  # (losses recorded, judged summary)

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("loss", "loss with running mean and spread",
                      ["loss/train", "loss/running_mean", "loss/running_std"])

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        for key, value in record.scalars.items():
            if key.startswith("loss_"):
                self.named.add(key, record.step, value)
        if record.loss is None or not self.due(record.step):
            return
        self.terms.add_scalars(record.step, record.scalars)
        self.critic = self.critic or record.labels.get("d_output") == "critic"
        if self.series.add(record.step, record.loss):
            self._log_running(ctx, record.step)

    def on_latents(self, ctx: ProbeContext, mu: torch.Tensor, logvar: torch.Tensor, step: int) -> None:
        self.terms.add(LossTerms.LATENT_KL, step, latent_kl(mu, logvar))

    def _log_running(self, ctx: ProbeContext, step: int) -> None:
        ctx.log_scalar("loss/running_mean", self.series.running_mean, step)
        ctx.log_scalar("loss/running_std", math.sqrt(self.series.running_var), step)
        self.logged_at = step

    def _judged(self) -> dict[str, Any]:
        """The loss summary with its verdicts, computed once per number of recorded losses."""
        if self.cached is None or self.cached[0] != len(self.series):
            summary = self.series.summary()
            judged = {**summary, **judge_trend(summary)}
            if self.critic and judged.get("unbounded_below"):
                judged.update(unbounded_below=False, unbounded_deep=False,
                              diverging=bool(judged["trend_up"] or judged["blew_up"] or judged["oscillation_grows"]))
            if judged.get("unbounded_below"):
                judged["terms"] = self.terms.summary()
            self.cached = (len(self.series), judged)
        return self.cached[1]

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        series = self.series
        if not len(series):
            return None
        if series.running_mean is not None and self.logged_at != series.last_finite_step:  # short runs get a point
            self._log_running(ctx, series.last_finite_step)
        judged = self._judged()
        steps, values = series.arrays()
        ctx.draw_figure(FIGURE, loss_figure, steps, values, judged, series.first_nonfinite, caption=LOSS_CAPTION)
        return ProbeSection(title="Loss", text=loss_text(judged), figures=[f"figures/{FIGURE}.png"],
                            table=judged.get("table"))

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not len(self.series):
            named = self.named.nonfinite()
            return [named_nonfinite_finding(named, None, ctx.task)] if named else []
        return loss_findings({**self._judged(), "named_nonfinite": self.named.nonfinite()}, f"figures/{FIGURE}.png",
                             ctx.task)

    def state(self) -> dict[str, Any]:
        """The judged loss summary less what only the rules read; available at any time, as findings are."""
        return {k: v for k, v in self._judged().items() if k not in INTERNAL} if len(self.series) else {}

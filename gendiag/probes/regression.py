"""Regression baseline: does a noise-prediction network learn anything its input tells it?

The output's variance across the rows of each recorded training call of the first watched network, against the
loss reported to `mon.step`, over the last quarter of the run (`gendiag.quantities.regression`; rule
`gendiag.rules.regression`).

Finding: `loss-at-baseline` (critical). Diffusion only: there the target's variance is known (1 per element for
N(0, I) noise); a flow's target variance is not, and a loss that stays high there has other causes (a target that
explodes near t = 1). The figure (`gendiag.figures.regression`) is drawn at `finish` only where the
finding holds."""

from __future__ import annotations

from typing import Any

from gendiag.figures.regression import CAPTION, baseline_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import ForwardCall, ReadsTrainingCallsAtFlush, StepRecord
from gendiag.quantities.regression import OutputSpread, late_summary
from gendiag.report.section import ProbeSection
from gendiag.rules.regression import loss_at_baseline

FIGURE = "regression_baseline"


@register
class RegressionProbe(ReadsTrainingCallsAtFlush):
    """The output's spread across rows against the loss: a network that answers every input alike."""

    name = "regression"
    tasks = ("diffusion",)
    wants_forward = True

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.spread = OutputSpread()

    def take_call(self, ctx: Any, call: ForwardCall) -> None:
        if call.mode == "train" and call.output is not None and call.output.dim() >= 1 \
                and call.output.is_floating_point():
            self.spread.add_call(call.model, call.step, call.output)

    def on_step(self, ctx: Any, record: StepRecord) -> None:
        if record.loss is not None:
            self.spread.add_loss(record.step, record.loss)

    def finish(self, ctx: Any) -> ProbeSection | None:
        summary = late_summary(self.spread)
        if summary is None:
            return None
        text = (f"Over steps {summary['since_step']}–{summary['last_step']}: loss {summary['loss']:.4g} (median), "
                f"output of `{summary['model']}` varying across rows by {summary['output_spread']:.3g} per element "
                f"(variance, median over {summary['calls']} calls of {summary['elements']} elements a row).")
        figures = []
        for finding in loss_at_baseline(summary, f"figures/{FIGURE}.png"):
            figures.append(ctx.draw_figure(FIGURE, baseline_figure, list(self.spread.losses), list(self.spread.spread),
                                           finding.evidence, caption=CAPTION))
        return ProbeSection(title="Regression baseline", text=text, figures=figures)

    def findings(self, ctx: Any) -> list[Finding]:
        return loss_at_baseline(late_summary(self.spread), f"figures/{FIGURE}.png")

    def state(self) -> dict[str, Any]:
        return late_summary(self.spread) or {}

"""The balance of a GAN's two players: the discriminator on real and on fake batches, its accuracy, both losses
and both networks' gradient norms, step by step.

It reads what the training loop hands to `Monitor.step`: `d_real`, `d_fake` (the discriminator's outputs on the
real and the fake batch, tensors), `d_output` ("prob", "logit" or "critic"), the scalars `loss_d`, `loss_g` and,
where the loop measures them right after each backward, `grad_norm_d`, `grad_norm_g`.

Findings:
- `gan-d-dominates`: for a sustained stretch D calls almost every fake a fake (median D(fake) < 0.1) with
  accuracy near 1; the generator then learns from a saturated discriminator.
- `gan-d-output-squashed`: every output of D lies in [0, 1] while the loss reads them as logits (D ends in a
  Sigmoid under BCE-with-logits): D's loss has a floor and G's gradient vanishes.
- `gan-oscillation`: the losses swing (after removing per-step noise and slow drift) with an amplitude that grows
  over the run, in both losses: the players chase each other instead of converging.
- `gan-g-objective-inverted`: G's loss falls while D's accuracy on fakes rises, G's loss moving with D(fake) step
  by step: G minimises the wrong objective.

The table is `gendiag.quantities.gan_balance.BalanceLog`, the rules `gendiag.rules.gan_balance`, the figure
`gendiag.figures.gan_balance`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gendiag.context import ProbeContext
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection
from gendiag.quantities.gan_balance import BalanceLog, ends_in_sigmoid
from gendiag.rules.gan_balance import (d_dominates, dominated_stretch, fmt, g_objective_inverted, oscillation, plain,
                                       squashed)

FIGURE = "gan_balance"


@register
class GanBalanceProbe(Probe):
    """D(real), D(fake), D accuracy, losses and gradient norms of both networks; `gan-d-dominates`,
    `gan-oscillation`."""

    name = "gan-balance"
    tasks = ("gan",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.log = BalanceLog()

    def setup(self, ctx: ProbeContext) -> None:
        balance = ["gan/d_real", "gan/d_fake", "train/loss_d", "train/loss_g", "train/grad_norm_d",
                   "train/grad_norm_g"]
        ctx.add_chart("GAN balance", "D/G balance: D(real), D(fake), losses, grad norms", balance)
        ctx.add_chart("GAN balance", "D on real and fake", ["gan/d_real", "gan/d_fake", "gan/d_accuracy"])
        ctx.add_chart("GAN balance", "losses", ["train/loss_d", "train/loss_g"])
        ctx.add_chart("GAN balance", "gradient norms", ["train/grad_norm_d", "train/grad_norm_g"])

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        row = self.log.add(record)
        if row is not None and self.due(record.step):
            for key in ("d_real", "d_fake", "d_accuracy"):
                if key in row and np.isfinite(row[key]):
                    ctx.log_scalar(f"gan/{key}", row[key], record.step)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not self.log.rows:
            return None
        from gendiag.figures.gan_balance import CAPTION, balance_figure

        frame = self.log.table()
        stretch = dominated_stretch(frame, self.log.d_output)
        squashing = self._squashed(ctx, frame, f"figures/{FIGURE}.png")
        floor = None if squashing is None else squashing.evidence["loss_d_floor_averaged" if squashing.evidence[
            "loss_d_averaged"] else "loss_d_floor_summed"]
        figure = ctx.draw_figure(FIGURE, balance_figure, frame, self.log.d_output or "prob", stretch, floor,
                                 caption=CAPTION)
        last = frame.tail(max(1, len(frame) // 10))
        text = (f"{len(frame)} steps recorded; discriminator output given as {self.log.d_output!r}. Over the last "
                f"tenth of training: median D(real) {fmt(last['d_real'].median())}, D(fake) "
                f"{fmt(last['d_fake'].median())}, D accuracy {fmt(last['d_accuracy'].median())}, loss_d "
                f"{fmt(last['loss_d'].median())}, loss_g {fmt(last['loss_g'].median())}.")
        if self.log.d_output == "critic":
            text += " D(real) and D(fake) are the critic's mean values (no probabilities); their gap estimates the " \
                    "Wasserstein distance."
        return ProbeSection(title="GAN balance: discriminator against generator", text=text, figures=[figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not self.log.rows:
            return []
        frame, figure = self.log.table(), f"figures/{FIGURE}.png"
        found = (self._squashed(ctx, frame, figure), d_dominates(frame, self.log.d_output, figure),
                 oscillation(frame, figure), g_objective_inverted(frame, self.log.d_output, figure))
        return [f for f in found if f is not None]

    def _squashed(self, ctx: ProbeContext, frame: Any, figure: str) -> Finding | None:
        sigmoid_ended = [name for name, watched in ctx.models.items() if ends_in_sigmoid(watched.module)]
        return squashed(frame, self.log.d_output, sigmoid_ended, len(ctx.models), figure)

    def state(self) -> dict[str, Any]:
        if not self.log.rows:
            return {}
        frame = self.log.table()
        last = frame.tail(max(1, len(frame) // 10))
        return {"d_output": self.log.d_output, "steps": len(frame),
                **{f"final_{key}": plain(last[key].median()) for key in ("d_real", "d_fake", "d_accuracy")}}

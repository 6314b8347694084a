"""VAE decoder output: does the decoder's range fit the data, and are the targets of a Bernoulli likelihood in
[0, 1]?

Reads the samples (`observe_samples`: the decoder's outputs on the prior), the data (`observe_data`) and the loss
(and a `recon=` scalar) given to `mon.step` (`gendiag.quantities.vae_output`; rules `gendiag.rules.vae_output`). It
takes no forward calls, so a VAE task records none unless another probe asks: a watched VAE called with arguments
that are not a time (labels, masks) stays as it was.

Findings: `vae-decoder-output-squashed`, `bce-target-out-of-range` (critical). Each has its figure
(`gendiag.figures.vae_output`), drawn only where its finding holds at the end."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.probes.thinning import LogStride
from gendiag.quantities.vae_output import OutputRanges
from gendiag.report.section import ProbeSection
from gendiag.rules.vae_output import bce_target, negative_term, squashed

FIGURES = {"squashed": "vae_output_squashed", "bce": "vae_bce_targets"}


@register
class VaeOutputProbe(Probe):
    """The decoder's output range and the data's, and the lowest loss."""

    name = "vae_output"
    tasks = ("vae",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.ranges = OutputRanges()
        self.stride = LogStride(budget=250, first=1)
        self.curves: dict[str, list[tuple[int, float]]] = {}  # "loss", "recon" -> (step, value) at thinned steps

    def on_samples(self, ctx: Any, samples: torch.Tensor, step: int) -> None:
        if samples.is_floating_point():
            self.ranges.add_samples(samples)

    def on_data(self, ctx: Any, batch: torch.Tensor, role: str) -> None:
        if role == "data":
            self.ranges.add_data(batch)

    def on_step(self, ctx: Any, record: StepRecord) -> None:
        kept = self.stride.take(record.step)
        for name, value in (("loss", record.loss), ("recon", record.scalars.get("recon"))):
            if value is None:
                continue
            self.ranges.add_loss(name, value, record.step)
            if kept:
                self.curves.setdefault(name, []).append((record.step, float(value)))

    def finish(self, ctx: Any) -> ProbeSection | None:
        samples, data = self.ranges.samples, self.ranges.data
        if not samples.values or not data.values:
            return None
        text = (f"Samples in [{samples.low:.4g}, {samples.high:.4g}] ({samples.values} values). Data in "
                f"[{data.low:.4g}, {data.high:.4g}], "
                f"{self.ranges.share_outside_unit():.1%} of its values outside [0, 1].")
        return ProbeSection(title="VAE decoder output", text=text, figures=self._draw(ctx))

    def _draw(self, ctx: Any) -> list[str]:
        """The figure of each finding that holds now; none on a healthy run."""
        from gendiag.figures.vae_output import BCE_CAPTION, SQUASHED_CAPTION, bce_figure, squashed_figure

        drawn = []
        if squashed(self.ranges):
            drawn.append(ctx.draw_figure(FIGURES["squashed"], squashed_figure, _host(self.ranges.kept_samples),
                                         _host(self.ranges.kept_data), caption=SQUASHED_CAPTION))
        negative = negative_term(self.ranges)
        if negative is not None and bce_target(self.ranges):
            name, lowest, at = negative
            curve = self.curves.get(name, [])
            drawn.append(ctx.draw_figure(
                FIGURES["bce"], bce_figure, _host(self.ranges.kept_data), np.array([s for s, _ in curve]),
                np.array([v for _, v in curve]), name, (at, lowest), caption=BCE_CAPTION))
        return drawn

    def findings(self, ctx: Any) -> list[Finding]:
        return (squashed(self.ranges, f"figures/{FIGURES['squashed']}.png")
                + bce_target(self.ranges, f"figures/{FIGURES['bce']}.png"))

    def state(self) -> dict[str, Any]:
        samples = self.ranges.samples
        if not samples.values or not self.ranges.data.values:
            return {}
        return {"samples": [samples.low, samples.high, samples.values],
                "data": [self.ranges.data.low, self.ranges.data.high],
                "share_outside_unit": self.ranges.share_outside_unit()}


def _host(values: torch.Tensor | None) -> np.ndarray:
    """Kept values as a NumPy array on the host (empty where none were kept)."""
    return np.empty(0) if values is None else values.cpu().numpy()

"""VAE decoder output: does the decoder's range fit the data, and are the targets of a Bernoulli likelihood in
[0, 1]?

Reads the samples (`observe_samples`: the decoder's outputs on the prior), the data (`observe_data`) and the loss
(and a `recon=` scalar) given to `mon.step` (`gendiag.quantities.vae_output`; rules `gendiag.rules.vae_output`). It
takes no forward calls, so a VAE task records none unless another probe asks: a watched VAE called with arguments
that are not a time (labels, masks) stays as it was.

Findings: `vae-decoder-output-squashed`, `bce-target-out-of-range` (critical)."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.quantities.vae_output import OutputRanges
from gendiag.report.section import ProbeSection
from gendiag.rules.vae_output import bce_target, squashed


@register
class VaeOutputProbe(Probe):
    """The decoder's output range and the data's, and the lowest loss."""

    name = "vae_output"
    tasks = ("vae",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.ranges = OutputRanges()

    def on_samples(self, ctx: Any, samples: torch.Tensor, step: int) -> None:
        if samples.is_floating_point():
            self.ranges.add_samples(samples)

    def on_data(self, ctx: Any, batch: torch.Tensor, role: str) -> None:
        if role == "data":
            self.ranges.add_data(batch)

    def on_step(self, ctx: Any, record: StepRecord) -> None:
        if record.loss is not None:
            self.ranges.add_loss("loss", record.loss, record.step)
        if "recon" in record.scalars:
            self.ranges.add_loss("recon", record.scalars["recon"], record.step)

    def finish(self, ctx: Any) -> ProbeSection | None:
        samples, data = self.ranges.samples, self.ranges.data
        if not samples.values or not data.values:
            return None
        text = (f"Samples in [{samples.low:.4g}, {samples.high:.4g}] ({samples.values} values). Data in "
                f"[{data.low:.4g}, {data.high:.4g}], "
                f"{self.ranges.share_outside_unit():.1%} of its values outside [0, 1].")
        return ProbeSection(title="VAE decoder output", text=text)

    def findings(self, ctx: Any) -> list[Finding]:
        return squashed(self.ranges) + bce_target(self.ranges)

    def state(self) -> dict[str, Any]:
        samples = self.ranges.samples
        if not samples.values or not self.ranges.data.values:
            return {}
        return {"samples": [samples.low, samples.high, samples.values],
                "data": [self.ranges.data.low, self.ranges.data.high],
                "share_outside_unit": self.ranges.share_outside_unit()}

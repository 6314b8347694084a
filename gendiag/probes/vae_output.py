"""VAE decoder output: does the decoder's range fit the data, and are the targets of a Bernoulli likelihood in
[0, 1]?

Reads the samples (`observe_samples`), the tensor outputs of watched networks in training, the data (`observe_data`)
and the loss (and a `recon=` scalar) given to `mon.step` (`gendiag.quantities.vae_output`; rules
`gendiag.rules.vae_output`).

Findings: `vae-decoder-output-squashed`, `bce-target-out-of-range` (critical)."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import ForwardCall, Probe, StepRecord
from gendiag.quantities.vae_output import OutputRanges
from gendiag.report.section import ProbeSection
from gendiag.rules.vae_output import bce_target, squashed


@register
class VaeOutputProbe(Probe):
    """The decoder's output range and the data's, and the lowest loss."""

    name = "vae_output"
    tasks = ("vae",)
    wants_forward = True

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.ranges = OutputRanges()

    def on_forward(self, ctx: Any, call: ForwardCall) -> None:
        if call.mode == "train" and call.output is not None and call.output.is_floating_point():
            self.ranges.add_output(call.model, call.output)

    def on_samples(self, ctx: Any, samples: torch.Tensor, step: int) -> None:
        if samples.is_floating_point():
            self.ranges.add_output("samples", samples)

    def on_data(self, ctx: Any, batch: torch.Tensor, role: str) -> None:
        if role == "data":
            self.ranges.add_data(batch)

    def on_step(self, ctx: Any, record: StepRecord) -> None:
        if record.loss is not None:
            self.ranges.add_loss("loss", record.loss, record.step)
        if "recon" in record.scalars:
            self.ranges.add_loss("recon", record.scalars["recon"], record.step)

    def finish(self, ctx: Any) -> ProbeSection | None:
        if not self.ranges.outputs or not self.ranges.data.values:
            return None
        data = self.ranges.data
        shown = "; ".join(f"{source}: [{seen.low:.4g}, {seen.high:.4g}] ({seen.values} values)"
                          for source, seen in self.ranges.outputs.items())
        text = (f"Decoder outputs — {shown}. Data in [{data.low:.4g}, {data.high:.4g}], "
                f"{self.ranges.share_outside_unit():.1%} of its values outside [0, 1].")
        return ProbeSection(title="VAE decoder output", text=text)

    def findings(self, ctx: Any) -> list[Finding]:
        return squashed(self.ranges) + bce_target(self.ranges)

    def state(self) -> dict[str, Any]:
        if not self.ranges.outputs or not self.ranges.data.values:
            return {}
        return {"outputs": {s: [r.low, r.high, r.values] for s, r in self.ranges.outputs.items()},
                "data": [self.ranges.data.low, self.ranges.data.high],
                "share_outside_unit": self.ranges.share_outside_unit()}

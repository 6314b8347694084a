"""Forward process: do a DDPM loop's training inputs follow the schedule's x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε?

With the fact `schedule` (ᾱ_t), the recorded training calls of the first watched network that gets a time are binned
by ᾱ of their t and their mean square per element compared with ᾱ_t·E[x0²] + 1 - ᾱ_t (`gendiag.quantities.
forward_process`; rule `gendiag.rules.forward_process`, figure `gendiag.figures.forward_process`).

Finding: `forward-process-off-schedule` (critical)."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.figures.forward_process import CAPTION, forward_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import ForwardCall, ReadsTrainingCallsAtFlush
from gendiag.quantities.forward_process import ForwardMoments, ScheduleTimes, forward_moments
from gendiag.report.section import ProbeSection
from gendiag.rules.forward_process import off_schedule
from gendiag.rules.thresholds import FORWARD_MIN_ROWS

FIGURE = "forward_process"
DATA_VALUES = 200_000  # data values whose mean square stands for E[x0²]


@register
class ForwardProcessProbe(ReadsTrainingCallsAtFlush):
    """The training inputs' mean square per bin of ᾱ_t against the schedule's forward process."""

    name = "forward_process"
    tasks = ("diffusion",)
    wants_forward = True

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.times: ScheduleTimes | None = None
        self.moments = ForwardMoments()
        self.model: str | None = None

    def setup(self, ctx: Any) -> None:
        schedule = ctx.facts.get("schedule")
        if schedule is not None:
            self.times = ScheduleTimes(schedule)

    def take_data(self, ctx: Any, batch: torch.Tensor, role: str) -> None:
        if self.times is not None and role == "data" and self.moments.data_count < DATA_VALUES:
            self.moments.add_data(batch)

    def take_call(self, ctx: Any, call: ForwardCall) -> None:
        if self.times is None or call.mode != "train" or call.x is None or call.t is None or call.x.dim() < 2:
            return
        if self.model is None:
            self.model = call.model
        if call.model != self.model or not call.x.is_floating_point():
            return
        self.times.note(call.t)
        self.moments.add_inputs(call.x, self.times.alpha_bar(call.t))

    def _measure(self) -> dict[str, Any] | None:
        if self.times is None:
            return None
        return forward_moments(self.moments, int(FORWARD_MIN_ROWS))

    def finish(self, ctx: Any) -> ProbeSection | None:
        measured = self._measure()
        if measured is None:
            return None
        figure = ctx.draw_figure(FIGURE, forward_figure, measured, caption=CAPTION)
        text = (f"Training inputs of `{self.model}` in {len(measured['alpha_bar'])} bins of ᾱ_t: median |log(measured "
                f"/ expected)| of their mean square {measured['off']:.3g} against the schedule's forward process, "
                f"{measured['off_root']:.3g} against the same without square roots; E[x0²] = "
                f"{measured['data_mean_square']:.3g} from {measured['data_source']}.")
        return ProbeSection(title="Forward process", text=text, figures=[figure])

    def findings(self, ctx: Any) -> list[Finding]:
        return off_schedule(self._measure(), self.model or "model", f"figures/{FIGURE}.png")

    def state(self) -> dict[str, Any]:
        measured = self._measure()
        return {} if measured is None else {"off": measured["off"], "off_root": measured["off_root"]}

"""Diffusion sampler: does the sampler read the network's output as what it was trained to return, and does its last
step return the x0 estimate?

With the fact `schedule` (ᾱ_t), it keeps the training rows of the first watched network trained at ᾱ_t >= 0.98 and
<= 0.02 (an x0 predictor returns about its input at the first end, a noise predictor at the other) and, of the latest
`with mon.sampling():` block, the last calls of a watched network (the trained one or a copy of it, an EMA's) and the
first rows of the samples observed after it (`gendiag.quantities.diffusion_sampler`; rule
`gendiag.rules.diffusion_sampler`). A block that ran several chains, or called the network twice at one time
(guidance, a second-order solver), is not judged.

Findings: `sampler-parameterization-mismatch`, `sampler-schedule-misindexed` (critical). Either is shown by
the figure `gendiag.figures.diffusion_sampler`, drawn at finish only where one holds."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import ForwardCall, ReadsTrainingCallsAtFlush
from gendiag.quantities.diffusion_sampler import (EndRows, SamplingChain, chain_reading, last_step_fit,
                                                  step_readings, trained_reading)
from gendiag.quantities.forward_process import ScheduleTimes
from gendiag.report.section import ProbeSection
from gendiag.rules.diffusion_sampler import sampler_findings
from gendiag.rules.thresholds import SAMPLER_FIT, SAMPLER_OTHER, SAMPLER_TRAINED_GAP, SAMPLER_TRAINED_NEAR

FIGURE = "diffusion_sampler"


@register
class DiffusionSamplerProbe(ReadsTrainingCallsAtFlush):
    """How the sampler reads the network's output, against what the network was trained to return."""

    name = "diffusion_sampler"
    tasks = ("diffusion",)
    wants_forward = True

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.times: ScheduleTimes | None = None
        self.model: str | None = None
        self.ends = (EndRows(clean=True), EndRows(clean=False))
        self.chains: dict[str, SamplingChain] = {}  # the latest sampling block's chain of each network

    def setup(self, ctx: Any) -> None:
        schedule = ctx.facts.get("schedule")
        if schedule is not None:
            self.times = ScheduleTimes(schedule)

    def take_call(self, ctx: Any, call: ForwardCall) -> None:
        if self.times is None or call.t is None or call.t.numel() == 0:
            return
        if call.mode == "train":
            self.model = self.model or call.model
            if call.model != self.model:
                return
            self.times.note(call.t)
            if call.x is not None and call.output is not None and call.output.shape[0] == call.x.shape[0]:
                abar = self.times.alpha_bar(call.t)
                for end in self.ends:
                    end.add(call.x, call.output, abar)
            return
        if call.head is None or call.output_head is None or call.output_head.shape != call.head.shape:
            return
        if any(chain.session != call.session for chain in self.chains.values()):
            self.chains = {}
        chain = self.chains.setdefault(call.model, SamplingChain(call.model, call.session, call.step))
        chain.add(float(call.t.reshape(-1).median()), call.head, call.output_head)

    def on_samples(self, ctx: Any, samples: torch.Tensor, step: int) -> None:
        for chain in self.chains.values():
            chain.attach(samples.float().cpu())

    def _measure(self) -> dict[str, Any] | None:
        """The first network of the latest sampling block whose calls make one chain, one call a time."""
        judged = [chain for chain in self.chains.values()
                  if chain.chains == 1 and not chain.repeats and len(chain.calls) >= 3]
        if self.times is None or not judged:
            return None
        chain = judged[0]
        steps = step_readings(chain, self.times.alpha_bar, SAMPLER_FIT, SAMPLER_OTHER)
        return {"model": chain.model, "step": chain.step, "steps": steps, "reading": chain_reading(steps),
                "trained": trained_reading(*self.ends, SAMPLER_TRAINED_NEAR, SAMPLER_TRAINED_GAP),
                "last": last_step_fit(chain, self.times.alpha_bar)}

    def finish(self, ctx: Any) -> ProbeSection | None:
        measured = self._measure()
        if measured is None:
            return None
        trained = measured["trained"]
        text = [f"The last {len(measured['steps'])} steps of the sampling block at step {measured['step']} read the "
                f"output of `{measured['model']}` as {measured['reading'] or 'neither noise nor x0 (not told)'}."]
        if trained is not None:
            text.append(f"In training its output lies {_shown(trained['distance_clean'])} (ᾱ_t >= 0.98) and "
                        f"{_shown(trained['distance_noisy'])} (ᾱ_t <= 0.02) of its input's size from its input: "
                        f"trained as {trained['reading'] or 'not told'}.")
        if measured["last"] is not None:
            last = measured["last"]
            text.append(f"The samples are {last['a']:.3g}·x0̂ {last['b']:+.3g}·ε̂ of the last call (residual "
                        f"{last['residual']:.2g}).")
        figures = []
        if sampler_findings(measured):  # drawn only where a finding needs it: a healthy run pays nothing
            from gendiag.figures.diffusion_sampler import CAPTION, sampler_readings

            figures.append(ctx.draw_figure(FIGURE, sampler_readings, measured["steps"], trained, measured["last"],
                                           measured["reading"], caption=CAPTION))
        return ProbeSection(title="Diffusion sampler", text=" ".join(text), figures=figures)

    def findings(self, ctx: Any) -> list[Finding]:
        return sampler_findings(self._measure(), f"figures/{FIGURE}.png")

    def state(self) -> dict[str, Any]:
        measured = self._measure()
        if measured is None:
            return {}
        return {"reading": measured["reading"], "trained": measured["trained"], "last": measured["last"]}


def _shown(distance: float | None) -> str:
    return "not seen" if distance is None else f"{distance:.3g}"

"""Diffusion schedule: does the forward process reach noise at its last step?

With the fact `schedule=alphas_cumprod` (ᾱ_t for t = 1..T, a 1-D tensor, array or list), the forward process is
x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 - ᾱ_t)·ε. Sampling starts from N(0, I), which is right only when the signal left at
the last step, sqrt(ᾱ_T)·x_0, is small against the noise sqrt(1 - ᾱ_T). The probe keeps the RMS value of the first
few observed data batches (role "data"; 1 when none were observed) and measures the leftover signal-to-noise
ratio sqrt(ᾱ_T)·RMS(x_0) / sqrt(1 - ᾱ_T) (`gendiag.quantities.schedule`; rule `gendiag.rules.schedule`, figure
`gendiag.figures.schedule`). A 100-step linear β schedule from 1e-4 to 0.02 (the DDPM swiss-roll tutorial's)
leaves ᾱ_T ≈ 0.364, sqrt(ᾱ_T) ≈ 0.603; the 1000-step DDPM schedule leaves sqrt(ᾱ_T) ≈ 0.0064.

Finding:
- `schedule-not-reaching-noise` (critical when the leftover ratio is >= 0.3, warning when >= 0.1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.figures.schedule import SCHEDULE_CAPTION, schedule_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection
from gendiag.quantities.schedule import DataRMS, ScheduleSummary, leftover_ratio, summarize_schedule
from gendiag.rules.schedule import schedule_findings
from gendiag.rules.thresholds import SCHEDULE_LEFTOVER_CRITICAL, SCHEDULE_LEFTOVER_WARNING

FIGURE = "schedule"


@register
class ScheduleProbe(Probe):
    """The signal left at the last diffusion step, sqrt(ᾱ_T), against the noise, and its figure."""

    name = "schedule"
    tasks = ("diffusion",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.alphas_cumprod: torch.Tensor | None = None
        self.summary: ScheduleSummary | None = None
        self.rms = DataRMS()

    def setup(self, ctx: ProbeContext) -> None:
        schedule = ctx.facts.get("schedule")
        if schedule is None:
            return
        self.summary = summarize_schedule(schedule)
        self.alphas_cumprod = torch.as_tensor(np.asarray(schedule, dtype=np.float64))

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        if self.summary is not None and role == "data":
            self.rms.add(batch)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if self.summary is None or self.alphas_cumprod is None:
            return None
        summary, rms = self.summary, self.rms.value
        ratio = leftover_ratio(summary, rms if rms is not None else 1.0)
        ctx.log_scalar("diffusion/signal_at_last_step", summary.signal_last)
        if math.isfinite(ratio):
            ctx.log_scalar("diffusion/leftover_signal_to_noise", ratio)
        ctx.draw_figure(FIGURE, schedule_figure, self.alphas_cumprod, caption=SCHEDULE_CAPTION)
        data = (f"data RMS {rms:.4g} (from {self.rms.batches} batches)" if rms is not None
                else "no data batch observed, data RMS taken as 1")
        text = (f"{summary.steps} steps; at the last step ᾱ_T = {summary.alpha_bar_last:.4g}, signal sqrt(ᾱ_T) = "
                f"{summary.signal_last:.4g}, noise sqrt(1 - ᾱ_T) = {summary.noise_last:.4g}, log SNR = "
                f"{summary.log_snr_last:.3g}; {data}; leftover signal-to-noise {ratio:.3g} "
                f"(warning at {SCHEDULE_LEFTOVER_WARNING:g}, critical at {SCHEDULE_LEFTOVER_CRITICAL:g}).")
        return ProbeSection(title="Diffusion schedule", text=text, figures=[f"figures/{FIGURE}.png"])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if self.summary is None:
            return []
        return schedule_findings(self.summary, self.rms.value, f"figures/{FIGURE}.png")

    def state(self) -> dict[str, Any]:
        if self.summary is None:
            return {}
        return {"steps": self.summary.steps, "alpha_bar_last": self.summary.alpha_bar_last,
                "signal_last": self.summary.signal_last, "data_rms": self.rms.value}

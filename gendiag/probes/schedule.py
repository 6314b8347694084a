"""Diffusion schedule: does the forward process reach noise at its last step?

With the fact `schedule=alphas_cumprod` (ᾱ_t for t = 1..T, a 1-D tensor, array or list), the forward process is
x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 - ᾱ_t)·ε. Sampling starts from N(0, I), which is right only when the signal left at
the last step, sqrt(ᾱ_T)·x_0, is small against the noise sqrt(1 - ᾱ_T). The probe keeps the RMS value of the first
few observed data batches (role "data"; 1 when none were observed) and measures the leftover signal-to-noise
ratio sqrt(ᾱ_T)·RMS(x_0) / sqrt(1 - ᾱ_T). A 100-step linear β schedule from 1e-4 to 0.02 (the DDPM swiss-roll
tutorial's) leaves ᾱ_T ≈ 0.364, sqrt(ᾱ_T) ≈ 0.603; the 1000-step DDPM schedule leaves sqrt(ᾱ_T) ≈ 0.0064.

Finding:
- `schedule-not-reaching-noise` (critical when the leftover ratio is >= 0.3, warning when >= 0.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LEFTOVER_WARNING = 0.1
LEFTOVER_CRITICAL = 0.3
DATA_BATCHES = 8


@dataclass(frozen=True)
class ScheduleSummary:
    """The end of a ᾱ_t schedule: the signal and noise scales left at the last step T."""

    steps: int
    alpha_bar_last: float
    signal_last: float
    noise_last: float
    log_snr_last: float


def summarize_schedule(alphas_cumprod: Any) -> ScheduleSummary:
    """Check that `alphas_cumprod` is a non-empty, finite, non-increasing 1-D sequence in [0, 1] (ValueError
    otherwise, with a hint when it looks like β_t instead) and return its last step's signal and noise."""
    try:
        values = torch.as_tensor(np.asarray(alphas_cumprod, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise ValueError(f"schedule: expected a 1-D sequence of ᾱ_t numbers, got {type(alphas_cumprod).__name__} "
                         f"({error})") from error
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"schedule: expected a non-empty 1-D sequence of ᾱ_t, got shape {tuple(values.shape)}")
    if not bool(torch.isfinite(values).all()):
        raise ValueError("schedule: ᾱ_t holds NaN or infinite values")
    if bool((values < 0).any() or (values > 1).any()):
        raise ValueError(f"schedule: ᾱ_t must lie in [0, 1], got values in [{float(values.min()):.4g}, "
                         f"{float(values.max()):.4g}]")
    rises = torch.nonzero(values[1:] > values[:-1] + 1e-12).flatten()
    if rises.numel():
        hint = (" (these look like β_t: pass alphas_cumprod = cumprod(1 - betas))"
                if float(values.max()) < 0.5 else "")
        raise ValueError(f"schedule: ᾱ_t must be non-increasing, it rises after index {int(rises[0])}{hint}")
    last = float(values[-1])
    noise = math.sqrt(1.0 - last)
    log_snr = math.log(last / (1.0 - last)) if 0.0 < last < 1.0 else (math.inf if last == 1.0 else -math.inf)
    return ScheduleSummary(steps=int(values.numel()), alpha_bar_last=last, signal_last=math.sqrt(last),
                           noise_last=noise, log_snr_last=log_snr)


def leftover_ratio(summary: ScheduleSummary, data_rms: float = 1.0) -> float:
    """sqrt(ᾱ_T)·RMS(x_0) / sqrt(1 - ᾱ_T): the data's share left in x_T against the noise (inf when ᾱ_T = 1)."""
    if summary.noise_last == 0.0:
        return math.inf
    return summary.signal_last * data_rms / summary.noise_last


@register
class ScheduleProbe(Probe):
    """The signal left at the last diffusion step, sqrt(ᾱ_T), against the noise, and its figure."""

    name = "schedule"
    tasks = ("diffusion",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.alphas_cumprod: torch.Tensor | None = None
        self.summary: ScheduleSummary | None = None
        self.square_sum = 0.0
        self.value_count = 0
        self.data_batches = 0
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        schedule = ctx.facts.get("schedule")
        if schedule is None:
            return
        self.summary = summarize_schedule(schedule)
        self.alphas_cumprod = torch.as_tensor(np.asarray(schedule, dtype=np.float64))

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        if self.summary is None or role != "data" or self.data_batches >= DATA_BATCHES:
            return
        values = batch.detach().to("cpu", torch.float64)
        self.square_sum += float((values ** 2).sum())
        self.value_count += values.numel()
        self.data_batches += 1

    @property
    def data_rms(self) -> float | None:
        return math.sqrt(self.square_sum / self.value_count) if self.value_count else None

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if self.summary is None or self.alphas_cumprod is None:
            return None
        summary = self.summary
        ratio = leftover_ratio(summary, self.data_rms if self.data_rms is not None else 1.0)
        ctx.log_scalar("diffusion/signal_at_last_step", summary.signal_last)
        if math.isfinite(ratio):
            ctx.log_scalar("diffusion/leftover_signal_to_noise", ratio)
        self.figure = ctx.save_figure(_schedule_figure(self.alphas_cumprod), "schedule")
        data = (f"data RMS {self.data_rms:.4g} (from {self.data_batches} batches)" if self.data_rms is not None
                else "no data batch observed, data RMS taken as 1")
        text = (f"{summary.steps} steps; at the last step ᾱ_T = {summary.alpha_bar_last:.4g}, signal sqrt(ᾱ_T) = "
                f"{summary.signal_last:.4g}, noise sqrt(1 - ᾱ_T) = {summary.noise_last:.4g}, log SNR = "
                f"{summary.log_snr_last:.3g}; {data}; leftover signal-to-noise {ratio:.3g} "
                f"(warning at {LEFTOVER_WARNING}, critical at {LEFTOVER_CRITICAL}).")
        return ProbeSection(title="Diffusion schedule", text=text, figures=[self.figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if self.summary is None:
            return []
        summary = self.summary
        rms = self.data_rms
        ratio = leftover_ratio(summary, rms if rms is not None else 1.0)
        if ratio < LEFTOVER_WARNING:
            return []
        return [Finding(
            code="schedule-not-reaching-noise", severity="critical" if ratio >= LEFTOVER_CRITICAL else "warning",
            title=f"The forward process keeps sqrt(ᾱ_T) = {summary.signal_last:.3g} of the data at its last step",
            message=(f"After {summary.steps} steps ᾱ_T = {summary.alpha_bar_last:.4g}: x_T is "
                     f"{summary.signal_last:.3g}·x_0 + {summary.noise_last:.3g}·ε, so with data of RMS "
                     f"{rms if rms is not None else 1.0:.3g} the data still makes up {ratio:.3g} of the noise's "
                     "size at the last step. Sampling starts from N(0, I), which the model never saw at t = T: "
                     "its first denoising steps get inputs unlike any in training, and the samples inherit that "
                     "error."),
            evidence={"steps": summary.steps, "alpha_bar_last": summary.alpha_bar_last,
                      "signal_last": summary.signal_last, "noise_last": summary.noise_last,
                      "log_snr_last": summary.log_snr_last, "data_rms": rms, "leftover_signal_to_noise": ratio,
                      "warning_at": LEFTOVER_WARNING, "critical_at": LEFTOVER_CRITICAL},
            suggestion=("Make ᾱ_T nearly 0: more steps (T = 1000 with β up to 0.02), a larger final β, a cosine "
                        "schedule, or rescale the schedule to zero terminal SNR."),
            figure=self.figure,
        )]

    def state(self) -> dict[str, Any]:
        if self.summary is None:
            return {}
        return {"steps": self.summary.steps, "alpha_bar_last": self.summary.alpha_bar_last,
                "signal_last": self.summary.signal_last, "data_rms": self.data_rms}


def _schedule_figure(alphas_cumprod: torch.Tensor) -> Figure:
    values = alphas_cumprod.numpy()
    steps = np.arange(1, len(values) + 1)
    figure, (scales, snr) = new_figure(1, 2, figsize=(9, 3.4))
    scales.plot(steps, np.sqrt(values), label="signal sqrt(ᾱ_t)")
    scales.plot(steps, np.sqrt(1 - values), label="noise sqrt(1 - ᾱ_t)")
    scales.axhline(LEFTOVER_WARNING, color="grey", linestyle=":", linewidth=1, label="warning level (data RMS 1)")
    scales.set_xlabel("step t")
    scales.set_ylim(0, 1.02)
    scales.set_title(f"at t = T: signal {np.sqrt(values[-1]):.3g}, noise {np.sqrt(1 - values[-1]):.3g}", fontsize=9)
    legend(scales, fontsize=8)
    with np.errstate(divide="ignore"):
        log_snr = np.log(values) - np.log1p(-values)
    snr.plot(steps, log_snr, color="tab:purple")
    snr.set_xlabel("step t")
    snr.set_ylabel("log SNR = log(ᾱ_t / (1 - ᾱ_t))")
    snr.set_title("signal-to-noise ratio", fontsize=9)
    figure.tight_layout()
    return figure

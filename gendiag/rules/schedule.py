"""Rule on a diffusion schedule: `schedule-not-reaching-noise` from `gendiag.quantities.schedule`."""

from __future__ import annotations

from gendiag.findings import Finding
from gendiag.quantities.schedule import ScheduleSummary, leftover_ratio
from gendiag.rules.thresholds import SCHEDULE_LEFTOVER_CRITICAL, SCHEDULE_LEFTOVER_WARNING


def schedule_findings(summary: ScheduleSummary, rms: float | None, figure: str | None) -> list[Finding]:
    """`schedule-not-reaching-noise` when the data left at the last step (RMS `rms`, 1 when None) is at least
    SCHEDULE_LEFTOVER_WARNING of the noise (critical from SCHEDULE_LEFTOVER_CRITICAL)."""
    ratio = leftover_ratio(summary, rms if rms is not None else 1.0)
    if ratio < SCHEDULE_LEFTOVER_WARNING:
        return []
    return [Finding(
        code="schedule-not-reaching-noise",
        severity="critical" if ratio >= SCHEDULE_LEFTOVER_CRITICAL else "warning",
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
                  "warning_at": SCHEDULE_LEFTOVER_WARNING, "critical_at": SCHEDULE_LEFTOVER_CRITICAL},
        suggestion=("Make ᾱ_T nearly 0: more steps (T = 1000 with β up to 0.02), a larger final β, a cosine "
                    "schedule, or rescale the schedule to zero terminal SNR."),
        figure=figure,
    )]

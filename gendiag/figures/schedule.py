"""The diffusion-schedule figure: signal and noise scales over t, and the log signal-to-noise ratio."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from gendiag.figures import legend, new_figure
from gendiag.rules.thresholds import SCHEDULE_LEFTOVER_WARNING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def schedule_figure(alphas_cumprod: torch.Tensor) -> "Figure":
    """sqrt(ᾱ_t) and sqrt(1 - ᾱ_t) over the steps with the warning level, and log(ᾱ_t / (1 - ᾱ_t))."""
    values = alphas_cumprod.numpy()
    steps = np.arange(1, len(values) + 1)
    figure, (scales, snr) = new_figure(1, 2, figsize=(9, 3.4))
    scales.plot(steps, np.sqrt(values), label="signal sqrt(ᾱ_t)")
    scales.plot(steps, np.sqrt(1 - values), label="noise sqrt(1 - ᾱ_t)")
    scales.axhline(SCHEDULE_LEFTOVER_WARNING, color="grey", linestyle=":", linewidth=1,
                   label="warning level (data RMS 1)")
    scales.set_xlabel("step t")
    scales.set_ylabel("scale (data RMS = 1)")
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


SCHEDULE_CAPTION = ("The diffusion schedule: how much of the data (signal) and of the noise x_t holds at each step, and "
                    "the log signal-to-noise ratio; at t = T the signal should be near 0.")

"""The end of a diffusion schedule: the signal and noise scales left at its last step (`summarize_schedule`), the
data's leftover signal-to-noise ratio there (`leftover_ratio`), and the RMS of the first data batches
(`DataRMS`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

DATA_BATCHES = 8  # data batches whose values make up the data RMS


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


class DataRMS:
    """The root mean square of the values of the first DATA_BATCHES data batches (float64; the sum of squares stays
    on the batches' device until `value` reads it)."""

    def __init__(self) -> None:
        self.square_sum: torch.Tensor | float = 0.0
        self.value_count = 0
        self.batches = 0

    def add(self, batch: torch.Tensor) -> None:
        if self.batches >= DATA_BATCHES:
            return
        values = batch.detach().to(torch.float64)
        self.square_sum = (values ** 2).sum() + self.square_sum
        self.value_count += values.numel()
        self.batches += 1

    @property
    def value(self) -> float | None:
        """The RMS, None before any batch."""
        return math.sqrt(float(self.square_sum) / self.value_count) if self.value_count else None

"""The forward process a DDPM loop trains on, read from the inputs it feeds the network.

With the schedule ᾱ_t known (fact `schedule`), x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε has, whatever the data, the mean
square per element E[x_t²] = ᾱ_t·E[x0²] + (1 - ᾱ_t): the noise is independent of the data and has mean 0. Training
inputs are binned by ᾱ of their t (`ScheduleTimes` maps the loop's t, integer steps or fractions of T, to the
schedule's index) and their mean square per bin compared with that line (`forward_moments`); E[x0²] comes from the
observed data, else from the least noisy bin, where x_t is nearly x0 whatever the process. A missing square root,
x_t = ᾱ_t·x0 + (1 - ᾱ_t)·ε, gives ᾱ_t²·E[x0²] + (1 - ᾱ_t)², half the expected value at ᾱ_t = 1/2."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

BINS = 10


class ScheduleTimes:
    """Maps the t a loop passes its network to the index of the schedule's ᾱ: integer steps 0 .. T - 1 (or 1 .. T,
    told once a t of T is seen), or fractions step / T in [0, 1]. The convention is read from the training times."""

    def __init__(self, alphas_cumprod: Any) -> None:
        self.abar = torch.as_tensor(np.asarray(alphas_cumprod, dtype=np.float64))
        self.steps = int(self.abar.numel())
        self.largest = -math.inf
        self.integers = True

    def note(self, t: torch.Tensor) -> None:
        """Training times: the largest one and whether all are whole numbers decide the convention."""
        t = t.double().reshape(-1)
        if t.numel():
            self.largest = max(self.largest, float(t.max()))
            self.integers = self.integers and bool((t == t.round()).all())

    def index(self, t: torch.Tensor) -> torch.Tensor:
        """The schedule index of each time (long, clamped to 0 .. T - 1)."""
        t = t.double().reshape(-1)
        if self.integers and self.largest > 1.0:
            steps = t - 1 if self.largest >= self.steps else t
        else:
            steps = t * self.steps
        return steps.round().clamp(0, self.steps - 1).long()

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ at each time (float64)."""
        return self.abar[self.index(t)]


@dataclass
class ForwardMoments:
    """Per bin of ᾱ (BINS equal bins over [0, 1]): the sum of squares of the training inputs' elements and their
    count; the data's mean square where observed."""

    squares: np.ndarray = field(default_factory=lambda: np.zeros(BINS))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS))
    rows: np.ndarray = field(default_factory=lambda: np.zeros(BINS))
    abar_sums: np.ndarray = field(default_factory=lambda: np.zeros(BINS))
    data_squares: float = 0.0
    data_count: int = 0

    def add_inputs(self, x: torch.Tensor, abar: torch.Tensor) -> None:
        """Training inputs (B, ...) with the ᾱ of each row (B,)."""
        flat = x.reshape(x.shape[0], -1).double()
        bins = (abar * BINS).long().clamp(0, BINS - 1).numpy()
        per_row = flat.pow(2).sum(1).numpy()
        np.add.at(self.squares, bins, per_row)
        np.add.at(self.counts, bins, flat.shape[1])
        np.add.at(self.rows, bins, 1)
        np.add.at(self.abar_sums, bins, abar.numpy())

    def add_data(self, batch: torch.Tensor) -> None:
        values = batch.detach().double()
        self.data_squares += float(values.pow(2).sum())
        self.data_count += values.numel()


def forward_moments(moments: ForwardMoments, min_rows: int) -> dict[str, Any] | None:
    """Per bin with at least `min_rows` rows: its mean ᾱ, the measured mean square of x_t, the expected one
    ᾱ·E[x0²] + 1 - ᾱ and the one a missing square root gives, ᾱ²·E[x0²] + (1 - ᾱ)²; the median |log(measured /
    expected)| over those bins (`off`), and the same against the missing-root line (`off_root`). None with fewer than
    three such bins, or no E[x0²]."""
    used = np.nonzero(moments.rows >= min_rows)[0]
    if len(used) < 3:
        return None
    abar = moments.abar_sums[used] / moments.rows[used]
    measured = moments.squares[used] / moments.counts[used]
    if moments.data_count:
        data_square, source = moments.data_squares / moments.data_count, "observed data"
    else:
        data_square, source = float(measured[np.argmax(abar)]), "the least noisy bin"
    if not data_square > 0:
        return None
    expected = abar * data_square + 1 - abar
    root = abar ** 2 * data_square + (1 - abar) ** 2
    return {"alpha_bar": abar.tolist(), "measured": measured.tolist(), "expected": expected.tolist(),
            "missing_root": root.tolist(), "data_mean_square": data_square, "data_source": source,
            "off": float(np.median(np.abs(np.log(measured / expected)))),
            "off_root": float(np.median(np.abs(np.log(measured / root)))),
            "rows": moments.rows[used].astype(int).tolist()}

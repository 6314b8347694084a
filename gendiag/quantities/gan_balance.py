"""The balance of a GAN's two players, step by step: D(real), D(fake), D's accuracy, both losses and both
gradient norms (`BalanceLog`), and the measurements the rules read from that table: the longest run of a condition
(`longest_run`) and the swing of a loss segment by segment (`swing_growth`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gendiag.metrics.statistics import spearman_rho
from gendiag.rules.thresholds import GAN_SQUASHED_MATCH

if TYPE_CHECKING:
    import pandas as pd

    from gendiag.probes.base import StepRecord

D_OUTPUTS = ("prob", "logit", "critic")
SCALARS = ("loss_d", "loss_g", "grad_norm_d", "grad_norm_g")
COLUMNS = ["step", *SCALARS, "d_real", "d_fake", "d_accuracy", "d_fake_accuracy", "d_min", "d_max",
           "loss_d_as_logits", "loss_d_as_probs"]
SEGMENTS = 5  # the run (after a 10% burn-in) is cut into this many segments for the swing


class BalanceLog:
    """One row per step that reported the discriminator's outputs or a loss; `table()` is cached on the row count."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.d_output: str | None = None
        self._table: tuple[int, pd.DataFrame] | None = None

    def add(self, record: StepRecord) -> dict[str, float] | None:
        """Read one step's report; returns the row kept, or None when the step reported neither D nor a loss."""
        d_output = record.labels.get("d_output", self.d_output or "prob")
        if d_output not in D_OUTPUTS:
            raise ValueError(f"gan-balance: d_output must be one of {D_OUTPUTS}, got {d_output!r}")
        self.d_output = d_output
        real, fake = _output(record, "d_real"), _output(record, "d_fake")
        row = {"step": record.step, **{key: record.scalars.get(key, np.nan) for key in SCALARS}}
        if real is not None and fake is not None:
            row.update(discriminator_view(real, fake, d_output))
            row.update(output_reading(real, fake, row["loss_d"]))
        elif np.isnan([row["loss_d"], row["loss_g"]]).all():
            return None
        self.rows.append(row)
        return row

    def table(self) -> pd.DataFrame:
        import pandas as pd

        if self._table is None or self._table[0] != len(self.rows):
            self._table = (len(self.rows), pd.DataFrame(self.rows).reindex(columns=COLUMNS).astype(float))
        return self._table[1]


def _output(record: StepRecord, key: str) -> torch.Tensor | None:
    if key in record.tensors:
        return record.tensors[key].detach().float().flatten().cpu()
    if key in record.scalars:
        return torch.tensor([record.scalars[key]])
    return None


def discriminator_view(real: torch.Tensor, fake: torch.Tensor, d_output: str) -> dict[str, float]:
    """Mean D(real), D(fake) as probabilities (critic values for a critic), D's accuracy and its accuracy on the
    fakes alone (both NaN for a critic)."""
    if d_output == "logit":
        real, fake = torch.sigmoid(real), torch.sigmoid(fake)
    if d_output == "critic":
        return {"d_real": float(real.mean()), "d_fake": float(fake.mean()), "d_accuracy": np.nan,
                "d_fake_accuracy": np.nan}
    correct = (real > 0.5).sum() + (fake < 0.5).sum()
    return {"d_real": float(real.mean()), "d_fake": float(fake.mean()),
            "d_accuracy": float(correct) / (real.numel() + fake.numel()),
            "d_fake_accuracy": float((fake < 0.5).sum()) / fake.numel() if fake.numel() else np.nan}


def output_reading(real: torch.Tensor, fake: torch.Tensor, loss_d: float) -> dict[str, float]:
    """The range of D's raw outputs, and whether the reported `loss_d` is a BCE of exactly these outputs read as
    logits (BCE-with-logits) or as probabilities (BCE), summed over the real and fake halves or averaged (1.0,
    0.0; NaN without a finite loss_d). Outputs in [0, 1] under a BCE-with-logits loss are probabilities fed where
    logits belong: D's loss cannot fall below log 2 + log(1 + e^-1) (half that when averaged)."""
    both = torch.cat([real, fake]).double()
    reading = {"d_min": float(both.min()), "d_max": float(both.max()),
               "loss_d_as_logits": np.nan, "loss_d_as_probs": np.nan}
    if not np.isfinite(loss_d) or loss_d <= 0:
        return reading
    real, fake = real.double(), fake.double()
    as_logits = float(torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean())
    reading["loss_d_as_logits"] = float(_matches(loss_d, as_logits))
    if reading["d_min"] >= 0 and reading["d_max"] <= 1:
        eps = 1e-12
        as_probs = float(-(real.clamp_min(eps).log().mean() + (1 - fake).clamp_min(eps).log().mean()))
        reading["loss_d_as_probs"] = float(_matches(loss_d, as_probs))
    else:
        reading["loss_d_as_probs"] = 0.0
    return reading


def _matches(loss: float, total: float) -> bool:
    """`loss` equals `total` (the real and fake halves summed) or `total / 2` (averaged), to GAN_SQUASHED_MATCH."""
    return any(abs(loss - candidate) <= GAN_SQUASHED_MATCH * abs(loss) for candidate in (total, total / 2))


def ends_in_sigmoid(module: torch.nn.Module) -> bool:
    """Whether the last submodule of `module` (in registration order, the order a Sequential runs them) is a
    Sigmoid: its outputs are probabilities by construction."""
    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    return bool(leaves) and isinstance(leaves[-1], torch.nn.Sigmoid)


LOGIT_FLOOR = float(np.log(2) + np.log1p(np.exp(-1)))  # BCE-with-logits of real and fake outputs within [0, 1]


def longest_run(mask: np.ndarray) -> tuple[int | None, int]:
    """First and last index of the longest run of True in `mask` (None, -1 when there is none)."""
    if not mask.any():
        return None, -1
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best]) - 1


@dataclass(frozen=True)
class Swing:
    """A loss's swing in each segment, the last segment's over the first's, and how steadily it grows (Spearman
    rank correlation of swing against segment)."""

    amplitudes: list[float]
    growth: float
    rank_correlation: float


def swing_growth(values: np.ndarray, min_steps: int) -> Swing | None:
    """Swing of a loss in each of `SEGMENTS` segments of the run (after a 10% burn-in): the standard deviation,
    around the segment's own straight-line trend (drift out), of the loss averaged over a short window (per-step
    noise out). None with fewer than `min_steps` finite values."""
    import pandas as pd

    values = values[np.isfinite(values)]
    if len(values) < min_steps:
        return None
    series = pd.Series(values[len(values) // 10:])
    smooth = series.rolling(max(1, len(series) // 200), min_periods=1).mean().to_numpy()
    amplitudes = []
    for part in np.array_split(smooth, SEGMENTS):
        position = np.arange(len(part))
        amplitudes.append(float(np.std(part - np.polyval(np.polyfit(position, part, 1), position))))
    growth = amplitudes[-1] / max(amplitudes[0], 1e-12)
    correlation = spearman_rho(np.arange(SEGMENTS), amplitudes) if np.ptp(amplitudes) > 0 else 0.0
    return Swing(amplitudes, growth, correlation)

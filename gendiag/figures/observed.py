"""Figure of the observed-values probe: the rows holding NaN or infinite values at each place over the steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.observed import SAMPLED
from gendiag.rules.thresholds import OBSERVED_SAMPLES_CRITICAL_SHARE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CAPTION = ("Rows holding NaN or infinite values at each place that had any (the data, a network's outputs, the "
           "samples), per step, as a count and as a share of the rows observed there; a healthy run has none.")


def nonfinite_figure(places: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]) -> Figure:
    """For each place: (first step of each bucket, rows, non-finite rows, bucket width in steps). Left: the
    non-finite rows per bucket; right: their share of the rows, with the samples' critical share where samples are
    drawn. A healthy run stays at 0 everywhere."""
    figure, (counts, shares) = new_figure(1, 2, figsize=(11, 3.6))
    for where, (steps, rows, bad, width) in places.items():
        label = where if width == 1 else f"{where} (per {width} steps)"
        counts.plot(steps, bad, marker="o", ms=3, linewidth=1, label=label)
        shares.plot(steps, bad / np.maximum(rows, 1), marker="o", ms=3, linewidth=1, label=label)
    for axis in (counts, shares):
        axis.axhline(0.0, color="black", linestyle=":", linewidth=1, label="healthy: none")
        axis.set_xlabel("step")
    if any(where.startswith(SAMPLED) for where in places):
        shares.axhline(OBSERVED_SAMPLES_CRITICAL_SHARE, color="tab:red", linestyle="--", linewidth=1,
                       label=f"samples: critical from {OBSERVED_SAMPLES_CRITICAL_SHARE:.0%}")
    counts.set_ylabel("non-finite rows (count)")
    counts.set_title("rows holding NaN or infinite values", fontsize=9)
    shares.set_ylabel("share of the rows observed")
    shares.set_ylim(-0.05, 1.05)
    shares.set_title("their share of the rows observed", fontsize=9)
    legend(counts, fontsize=7)
    legend(shares, fontsize=7)
    figure.tight_layout()
    return figure

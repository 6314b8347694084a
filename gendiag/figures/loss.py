"""The loss curve with its running median and spread, and the Loss section's prose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.loss import WINDOWS
from gendiag.rules.thresholds import LOSS_SPIKE_MADS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def loss_figure(steps: np.ndarray, values: np.ndarray, summary: dict[str, Any], first_bad: int | None) -> "Figure":
    """Every recorded loss, its running median with the band of the middle 68% of the window (a spike moves
    neither, and the band stays positive on a log axis, where mean ± std would dip below zero), the spikes, the
    first non-finite step and (when diverging) the window of lowest median."""
    import pandas as pd

    figure, axis = new_figure(figsize=(8, 4.2))
    series = pd.Series(np.where(np.isfinite(values), values, np.nan), index=steps)
    window = max(15, len(series) // 50)  # a lone spike is under 16% of a window: the band leaves it out
    rolling = series.rolling(window, min_periods=1, center=True)
    median, low, high = rolling.median(), rolling.quantile(0.16), rolling.quantile(0.84)
    stride = max(1, len(series) // 20_000)
    axis.plot(series.index[::stride], series.to_numpy()[::stride], lw=0.6, alpha=0.45, color="tab:blue",
              label="loss")
    axis.plot(median.index, median.to_numpy(), lw=1.6, color="tab:blue", label=f"running median ({window} steps)")
    axis.fill_between(median.index, low.to_numpy(), high.to_numpy(), color="tab:blue", alpha=0.15,
                      label="middle 68% of the window")
    spikes = [s for s in summary.get("spike_steps", []) if s in series.index]
    if spikes:
        axis.plot(spikes, series.loc[spikes].to_numpy(), "x", color="tab:red", ms=5,
                  label=f"spike (> {LOSS_SPIKE_MADS:g} MADs)")
    finite = series.dropna()
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 20:
        axis.set_yscale("log")
    if first_bad is not None:
        axis.axvline(first_bad, color="tab:red", ls="--", label=f"first NaN/inf (step {first_bad})")
    if summary.get("diverging"):
        start, end = summary["best_window"]
        axis.axvspan(start, end, color="tab:green", alpha=0.12,
                     label=f"window of lowest median, {summary['best_median']:.3g} (steps {start}–{end})")
    axis.set_xlabel("step")
    axis.set_ylabel("training loss (as logged)")
    legend(axis, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    figure.tight_layout()
    return figure


LOSS_CAPTION = ("The loss at every recorded step, its running median and the middle 68% of each window; red crosses "
                "mark spikes, green shading the window of lowest median when the loss diverges.")


def loss_text(summary: dict[str, Any]) -> str:
    """The Loss section's text: counts, first/last/lowest loss, the windows and spikes."""
    if not summary.get("finite"):
        return f"No finite loss among the {summary['recorded']} recorded steps."
    lines = [f"{summary['finite']} finite losses: first {summary['first_loss']:.4g}, last {summary['last_loss']:.4g}, "
             f"lowest {summary['min_loss']:.4g}."]
    if summary["nonfinite"]:
        lines.append(f"{summary['nonfinite']} NaN or infinite losses, the first at step "
                     f"{summary['first_nonfinite_step']}.")
    if "best_median" in summary:
        lines.append(f"Over {WINDOWS} windows the median is lowest at steps {summary['best_window'][0]}–"
                     f"{summary['best_window'][1]} ({summary['best_median']:.4g}) and {summary['last_median']:.4g} "
                     f"in the last; the step-to-step swing of the last window is {summary['oscillation_growth']:.3g}× "
                     f"that of the calmest. {summary['spikes']} spikes (more than {LOSS_SPIKE_MADS:g} median absolute "
                     "deviations from their window's median).")
    return " ".join(lines)

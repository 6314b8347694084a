"""The loss curve with its running mean and spread, and the Loss section's prose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.loss import WINDOWS
from gendiag.rules.thresholds import LOSS_SPIKE_MADS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def loss_figure(steps: np.ndarray, values: np.ndarray, summary: dict[str, Any], first_bad: int | None) -> "Figure":
    """Every recorded loss, its rolling mean ± std, the first non-finite step and (when diverging) the best
    window."""
    import pandas as pd

    figure, axis = new_figure(figsize=(8, 3.6))
    series = pd.Series(np.where(np.isfinite(values), values, np.nan), index=steps)
    window = max(5, len(series) // 50)
    mean = series.rolling(window, min_periods=1, center=True).mean()
    std = series.rolling(window, min_periods=2, center=True).std().fillna(0.0)
    stride = max(1, len(series) // 20_000)
    axis.plot(series.index[::stride], series.to_numpy()[::stride], lw=0.6, alpha=0.45, color="tab:blue",
              label="loss")
    axis.plot(mean.index, mean.to_numpy(), lw=1.6, color="tab:blue", label=f"running mean ({window} steps)")
    axis.fill_between(mean.index, (mean - std).to_numpy(), (mean + std).to_numpy(), color="tab:blue", alpha=0.15,
                      label="± running std")
    finite = series.dropna()
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 20:
        axis.set_yscale("log")
    if first_bad is not None:
        axis.axvline(first_bad, color="tab:red", ls="--", label=f"first NaN/inf (step {first_bad})")
    if summary.get("diverging"):
        axis.axvspan(*summary["best_window"], color="tab:green", alpha=0.1, label="lowest window")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    legend(axis, fontsize=8, loc="best")
    figure.tight_layout()
    return figure


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

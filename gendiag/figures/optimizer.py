"""The optimizer's figures: the learning rate over the run against the "decayed to zero" level
(`lr-decayed-to-zero`), and the weights' norm beside the loss at the same steps (`weight-decay-dominates`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.optimizer import LrSeries, lr_fall
from gendiag.rules.thresholds import LR_ZERO_FRACTION, WD_LOSS_FLAT, WD_SHRINK

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LR_CAPTION = ("Each learning rate over the steps (log scale; 0 is drawn at the bottom edge), the level "
              f"{LR_ZERO_FRACTION:g} of its peak below which it counts as about 0 (dashed), and the step it first fell "
              "there (dotted).")
WEIGHTS_CAPTION = ("The trained networks' weight norm (L2 over all parameters) and the loss at the same steps, with "
                   f"the rule's lines (dashed): the norm {WD_SHRINK:.0%} below its peak, the loss {WD_LOSS_FLAT:.0%} "
                   "below its value at the weights' peak, under which the loss of a loop that trains goes while its "
                   "weights shrink.")


def lr_figure(series: list[LrSeries], fraction: float) -> Figure:
    """Each learning rate over its steps on a log axis, with its level `fraction` of its peak and the step it first
    fell below it; readings of 0 (or below the axis' floor) are drawn on the floor."""
    figure, axis = new_figure(figsize=(8, 4.2))
    falls = [lr_fall(one, fraction) for one in series]
    peaks = [fall["peak"] for fall in falls if fall is not None]
    if not peaks:
        raise ValueError("lr_figure: no learning rate with two readings and a positive peak to draw")
    positive = [value for one in series for value in one.values if np.isfinite(value) and value > 0]
    floor = max(min(min(positive), fraction * min(peaks) / 100) / 3, max(peaks) * 1e-12)
    for index, (one, fall) in enumerate(zip(series, falls)):
        if fall is None:
            continue
        color = f"C{index}"
        values = np.asarray(one.values, dtype=float)
        axis.plot(one.steps, np.where(np.isfinite(values), np.maximum(values, floor), np.nan), color=color, lw=1.4,
                  label=f"{one.label} (peak {fall['peak']:.3g} at step {fall['peak_step']})")
        axis.axhline(fraction * fall["peak"], color=color, ls="--", lw=1,
                     label=f"{fraction:g} of the peak: about 0")
        if fall["first_below_step"] is not None:
            first, share = fall["first_below_step"], fall["share_below"]
            axis.axvline(first, color=color, ls=":", lw=1.2,
                         label=f"first below it at step {first} ({share:.0%} of the run below)")
    axis.set_yscale("log")
    axis.set_ylim(bottom=floor / 1.5)
    axis.set_xlabel("step")
    axis.set_ylabel("learning rate (log scale)")
    axis.set_title("Learning rate over the run")
    legend(axis, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    figure.tight_layout()
    return figure


def weights_figure(steps: list[int], norms: list[float], losses: list[float], shrink: dict[str, Any]) -> Figure:
    """The weights' norm over the read steps with the rule's line WD_SHRINK below its peak, and the loss at the
    same steps with the line WD_LOSS_FLAT below its value at the weights' peak; the peak's step marked on both."""
    figure, (left, right) = new_figure(1, 2, figsize=(10, 3.8))
    peak, peak_step = shrink["peak_norm"], shrink["peak_step"]
    finite = np.where(np.isfinite(norms), norms, np.nan)  # weights that overflowed: a gap, as the rule leaves them out
    left.plot(steps, finite, color="tab:blue", lw=1.4, label="weight norm")
    left.plot([peak_step], [peak], "o", color="tab:blue", ms=5, label=f"peak {peak:.4g} (step {peak_step})")
    left.axhline((1 - WD_SHRINK) * peak, color="tab:red", ls="--", lw=1,
                 label=f"{1 - WD_SHRINK:.0%} of the peak; ends at {shrink['end_norm']:.4g}")
    left.set_xlabel("step")
    left.set_ylabel("weight norm (L2 over all parameters)")
    left.set_title(f"Weights shrink by {shrink['shrink']:.0%} from their peak")
    right.plot(steps, losses, color="tab:gray", lw=1.2, label="loss at the same steps")
    flat = shrink["loss_at_peak"] - WD_LOSS_FLAT * abs(shrink["loss_at_peak"])
    right.axhline(flat, color="tab:red", ls="--", lw=1,
                  label=f"{WD_LOSS_FLAT:.0%} below the loss at the weights' peak")
    right.set_xlabel("step")
    right.set_ylabel("training loss (as logged)")
    right.set_title(f"Loss {shrink['loss_at_peak']:.4g} at the peak, {shrink['loss_at_end']:.4g} at the end")
    for axis in (left, right):
        axis.axvline(peak_step, color="tab:blue", ls=":", lw=1)
        legend(axis, fontsize=8)
    figure.tight_layout()
    return figure

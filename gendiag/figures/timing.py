"""The step-time figure (share per phase, milliseconds per step by phase over training) and its section's prose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gendiag.figures import legend, new_figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def timing_figure(per_step: "pd.DataFrame", summary: dict[str, Any]) -> "Figure":
    """A bar of the shares per phase and a stacked plot of the milliseconds per step by phase."""
    figure, axes = new_figure(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 2]})
    phases = list(summary["shares"])
    left = 0.0
    for phase in phases:
        share = summary["shares"][phase]
        axes[0].barh(0, share, left=left, label=f"{phase} {share:.0%}")
        left += share
    axes[0].set_xlim(0, 1)
    axes[0].set_yticks([])
    axes[0].set_xlabel("share of step time")
    legend(axes[0], fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    window = max(1, len(per_step) // 200)
    smooth = per_step[phases].rolling(window, min_periods=1).mean() * 1000
    axes[1].stackplot(smooth.index, *[smooth[p].to_numpy() for p in phases], labels=phases, alpha=0.8)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel(f"ms per step (mean of {window})")
    legend(axes[1], fontsize=8, loc="upper right")
    figure.tight_layout()
    return figure


TIMING_CAPTION = ("Wall time per training step by named phase (Monitor.phase): each phase's share, and milliseconds "
                  "per step over training, stacked.")


def timing_text(summary: dict[str, Any]) -> str:
    """The section text: steps measured, milliseconds per step, the share of each phase."""
    parts = ", ".join(f"{p} {summary['shares'][p]:.0%} ({summary['ms_per_step'][p]:.3g} ms)" for p in summary["shares"])
    return (f"{summary['steps_measured']} steps measured, {summary['ms_per_step_total']:.3g} ms per step on average "
            f"(median {summary['ms_per_step_median']:.3g} ms). Share of the step time by phase: {parts}. \"other\" is "
            "time outside every named phase (the Monitor and its probes, logging, the rest of the loop).")

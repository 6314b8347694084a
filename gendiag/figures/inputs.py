"""Figure of the inputs probe: the mismatch per bin of t, the inputs between source and data, the worst bin's
inputs on a plane."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gendiag.figures import legend, new_figure
from gendiag.flow.projection import principal_plane
from gendiag.flow.reservoir import Reservoir
from gendiag.rules.thresholds import INPUTS_CRITICAL_RATIO as CRITICAL_RATIO
from gendiag.rules.thresholds import INPUTS_WARNING_RATIO as WARNING_RATIO

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def train_vs_sampling(table: "pd.DataFrame", train: Reservoir, sampling: Reservoir, data: Reservoir | None,
            source: Reservoir | None, reference: float | None) -> Figure:
    """Left: the mismatch per bin of t. Middle: where the inputs' means sit between source and data, per bin.
    Right: training and sampling inputs of the worst bin on a plane."""
    figure, axes = new_figure(1, 3, figsize=(15, 4))
    centers = (table["t_low"] + table["t_high"]) / 2
    width = float((table["t_high"] - table["t_low"]).iloc[0]) * 0.9
    if reference:
        axes[0].bar(centers, table["ratio"].fillna(0), width=width, color="tab:red", alpha=0.7)
        axes[0].axhline(WARNING_RATIO, color="orange", ls="--", lw=1, label=f"warning {WARNING_RATIO}")
        axes[0].axhline(CRITICAL_RATIO, color="red", ls="--", lw=1, label=f"critical {CRITICAL_RATIO}")
        axes[0].set_ylabel("energy distance / data–source distance")
        legend(axes[0], fontsize=8)
    else:
        axes[0].bar(centers, table["energy"].fillna(0), width=width, color="tab:red", alpha=0.7)
        axes[0].set_ylabel("energy distance (unscaled)")
    axes[0].set_xlabel("t")
    axes[0].set_title("training vs sampling inputs, per bin of t")
    if table["progress_train"].notna().any():
        axes[1].plot(centers, table["progress_train"], "o-", color="tab:blue", label="training inputs")
        axes[1].plot(centers, table["progress_sampling"], "o-", color="tab:orange", label="sampling inputs")
        axes[1].plot([0, 1], [0, 1], ls=":", color="0.5", label="linear path x_t")
        axes[1].set_ylabel("mean's position: source 0 → data 1")
        legend(axes[1], fontsize=8)
    else:
        axes[1].text(0.5, 0.5, "source and data means too close\nto place the inputs between them",
                     ha="center", va="center", transform=axes[1].transAxes)
    axes[1].set_xlabel("t")
    axes[1].set_title("inputs between source and data")
    scored = table.dropna(subset=["energy"])
    pick = scored.loc[scored["energy"].idxmax()] if not scored.empty else table.iloc[-1]
    lo, hi = float(pick["t_low"]), float(pick["t_high"])
    a = train.rows[(train.times >= lo) & (train.times <= hi)]
    b = sampling.rows[(sampling.times >= lo) & (sampling.times <= hi)]
    background = [r.rows for r in (data, source) if r is not None and len(r) and r.rows.shape[1] == a.shape[1]]
    fit_on = torch.cat(background + [a, b]) if background else torch.cat([a, b])
    if fit_on.shape[0] >= 2 and fit_on.shape[1] >= 2:
        plane = principal_plane(fit_on)
        for reservoir, colour, label in ((data, "0.75", "data"), (source, "tab:green", "source")):
            if reservoir is not None and len(reservoir) and reservoir.rows.shape[1] == a.shape[1]:
                xy = plane.project(reservoir.rows)
                axes[2].scatter(xy[:, 0], xy[:, 1], s=3, color=colour, alpha=0.3, label=label)
        for rows, colour, label in ((a, "tab:blue", "training inputs"), (b, "tab:orange", "sampling inputs")):
            if len(rows):
                xy = plane.project(rows)
                axes[2].scatter(xy[:, 0], xy[:, 1], s=8, color=colour, alpha=0.7, label=label)
        axes[2].set_xlabel(plane.axis_labels()[0])
        axes[2].set_ylabel(plane.axis_labels()[1])
        legend(axes[2], fontsize=8, markerscale=2)
    axes[2].set_title(f"inputs with t in [{lo:.2f}, {hi:.2f}]")
    figure.tight_layout()
    return figure

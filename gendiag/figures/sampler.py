"""Figure of the sampler check: the sampler's state per field call, and its output on the data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gendiag.figures import legend, new_figure
from gendiag.flow.projection import principal_plane
from gendiag.quantities.sampler import STEP_COUNTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def sampler_check(trajectories: dict[tuple[str, int], list[float]], outputs: dict[tuple[str, int], torch.Tensor],
            data: torch.Tensor | None, x0: torch.Tensor, reference: str) -> Figure:
    """Left: how far the state moved at each call to the field, per step count. Right: outputs on the data."""
    figure, axes = new_figure(1, 2, figsize=(11, 4))
    for steps in STEP_COUNTS:
        changes = trajectories[(reference, steps)]
        if changes:
            axes[0].plot(torch.linspace(0, 1, len(changes)), changes, "o-" if len(changes) < 20 else "-",
                         ms=3, label=f"{steps} steps")
    axes[0].set_xlabel("fraction of the sampler's field calls")
    axes[0].set_ylabel("state change since the start (relative RMS)")
    axes[0].set_title(f"sampler state on the {reference} field")
    legend(axes[0], fontsize=8)
    start = x0.reshape(x0.shape[0], -1).double()
    final = outputs[(reference, STEP_COUNTS[-1])]
    plane = principal_plane(torch.cat([data.double(), start]) if data is not None else torch.cat([start, final]))
    if data is not None:
        xy = plane.project(data[:1000])
        axes[1].scatter(xy[:, 0], xy[:, 1], s=3, color="0.7", alpha=0.5, label="data")
    for rows, colour, label in ((start, "tab:green", "start noise"),
                                (final, "tab:orange", f"output, {STEP_COUNTS[-1]} steps")):
        xy = plane.project(rows)
        axes[1].scatter(xy[:, 0], xy[:, 1], s=6, color=colour, alpha=0.7, label=label)
    axes[1].set_xlabel(plane.axis_labels()[0])
    axes[1].set_ylabel(plane.axis_labels()[1])
    axes[1].set_title(f"sampler output on the {reference} field")
    legend(axes[1], fontsize=8, markerscale=2)
    figure.tight_layout()
    return figure

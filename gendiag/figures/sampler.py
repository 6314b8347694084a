"""Figure of the sampler check: the sampler's state per field call, and its output on the data, per field."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gendiag.figures import legend, new_figure
from gendiag.flow.projection import principal_plane
from gendiag.quantities.sampler import STEP_COUNTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def sampler_check(trajectories: dict[tuple[str, int], list[float]], outputs: dict[tuple[str, int], torch.Tensor],
                  data: torch.Tensor | None, x0: torch.Tensor, fields: list[str]) -> Figure:
    """One column per field the sampler ran on (the exact and the learned one side by side): top, how far the state
    moved at each call to the field, per step count, on one scale; bottom, the start noise and the outputs against
    the data on one plane."""
    figure, axes = new_figure(2, len(fields), figsize=(5.5 * len(fields), 7.2), squeeze=False, sharey="row")
    start = x0.reshape(x0.shape[0], -1).double()
    finals = [outputs[(field, STEP_COUNTS[-1])] for field in fields]
    plane = principal_plane(torch.cat([data.double(), start]) if data is not None else torch.cat([start, *finals]))
    for column, (field, final) in enumerate(zip(fields, finals)):
        top, bottom = axes[0, column], axes[1, column]
        for steps in STEP_COUNTS:
            changes = trajectories.get((field, steps)) or []
            if changes:
                top.plot(torch.linspace(0, 1, len(changes)), changes, "o-" if len(changes) < 20 else "-",
                         ms=3, label=f"{steps} steps")
        top.set_xlabel("fraction of the sampler's field calls")
        top.set_ylabel("state change since the start (relative RMS)")
        top.set_title(f"sampler state on the {field} field", fontsize=10)
        legend(top, fontsize=8)
        if data is not None:
            xy = plane.project(data[:1000])
            bottom.scatter(xy[:, 0], xy[:, 1], s=3, color="0.7", alpha=0.5, label="data")
        for rows, colour, label in ((start, "tab:green", "start noise"),
                                    (final, "tab:orange", f"output, {STEP_COUNTS[-1]} steps")):
            xy = plane.project(rows)
            bottom.scatter(xy[:, 0], xy[:, 1], s=6, color=colour, alpha=0.7, label=label)
        bottom.set_xlabel(plane.axis_labels()[0])
        bottom.set_ylabel(plane.axis_labels()[1])
        bottom.set_title(f"sampler output on the {field} field", fontsize=10)
        legend(bottom, fontsize=8, markerscale=2)
    figure.tight_layout()
    return figure


CAPTION = ("The sampler given as a fact, run on each field side by side: how far its state moves at each call to the "
           "field (0 all along: it never updates its state), and where its outputs land against the data.")

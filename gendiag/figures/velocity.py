"""Figures of the velocity probe: quivers of the learned and the exact field, and the field error and
sensitivities per t."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gendiag.figures import legend, new_figure
from gendiag.flow.projection import Plane, bounding_box, grid
from gendiag.quantities.velocity import LAST_T, QUIVER_TIMES, SENSITIVITY_T_TIMES, Field
from gendiag.rules.thresholds import VELOCITY_IGNORES_X

if TYPE_CHECKING:
    from matplotlib.figure import Figure

GRID_SIZE = 15


def quivers(plane: Plane, data: torch.Tensor, learned: Field, exact: Field) -> Figure:
    """Two rows of quivers (learned, exact) at the quiver times over the data's bounding box on `plane`."""
    data_xy = plane.project(data)
    box = bounding_box(data_xy)
    coords = grid(box, GRID_SIZE)
    points = plane.lift(coords)
    figure, axes = new_figure(2, len(QUIVER_TIMES), figsize=(2.8 * len(QUIVER_TIMES), 5.6), sharex=True, sharey=True)
    for column, t in enumerate(QUIVER_TIMES):
        at = min(t, LAST_T)
        for row, (field, label) in enumerate(((learned, "learned"), (exact, "exact"))):
            arrows = plane.project_vectors(field(points, at))
            axis = axes[row, column]
            axis.scatter(data_xy[:400, 0], data_xy[:400, 1], s=2, color="0.7", alpha=0.5)
            axis.quiver(coords[:, 0], coords[:, 1], arrows[:, 0], arrows[:, 1],
                        arrows.norm(dim=1), cmap="viridis", angles="xy")
            axis.set_title(f"{label}, t = {at:g}", fontsize=9)
    labels = plane.axis_labels()
    for axis in axes[-1]:
        axis.set_xlabel(labels[0], fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel(labels[1], fontsize=8)
    figure.tight_layout()
    return figure


def sensitivity(errors: dict[float, float], sensitivity_x: dict[float, float], sensitivity_t: float,
                        over_t_learned: torch.Tensor, over_t_exact: torch.Tensor, plane: Plane) -> Figure:
    """Field error per t; sensitivity to x per t and to t; the output along the first plane axis against t for a
    few fixed inputs, learned (solid) and exact (dashed)."""
    figure, axes = new_figure(1, 3, figsize=(14, 3.8))
    axes[0].plot(list(errors), list(errors.values()), "o-")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("t")
    axes[0].set_ylabel("mean |u_θ − u*|² / mean |u*|²")
    axes[0].set_title("field error")
    axes[1].plot(list(sensitivity_x), list(sensitivity_x.values()), "o-", label="to x (per t)")
    axes[1].axhline(sensitivity_t, color="tab:red", label=f"to t ({sensitivity_t:.3f})")
    axes[1].axhline(VELOCITY_IGNORES_X, color="0.4", ls="--", lw=1, label=f"'ignores' below {VELOCITY_IGNORES_X}")
    axes[1].set_xlabel("t")
    axes[1].set_ylabel("learned / exact relative variation")
    axes[1].set_title("sensitivity")
    legend(axes[1], fontsize=8)
    times = list(SENSITIVITY_T_TIMES)
    along_learned = plane.project_vectors(over_t_learned[:4].reshape(-1, over_t_learned.shape[-1])).reshape(-1, len(times), 2)
    along_exact = plane.project_vectors(over_t_exact[:4].reshape(-1, over_t_exact.shape[-1])).reshape(-1, len(times), 2)
    for index in range(along_learned.shape[0]):
        colour = f"C{index}"
        axes[2].plot(times, along_learned[index, :, 0], "-", color=colour)
        axes[2].plot(times, along_exact[index, :, 0], "--", color=colour)
    axes[2].set_xlabel("t")
    axes[2].set_ylabel(f"velocity along {plane.axis_labels()[0].split(' ')[0]}")
    axes[2].set_title("fixed x: learned (solid), exact (dashed)")
    figure.tight_layout()
    return figure

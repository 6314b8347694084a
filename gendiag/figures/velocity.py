"""Figures of the velocity probe: quivers of the learned and the exact field, and the field error and
sensitivities per t."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gendiag.figures import legend, new_figure
from gendiag.flow.projection import Plane, bounding_box, grid
from gendiag.quantities.velocity import LAST_T, QUIVER_TIMES, SENSITIVITY_T_TIMES, Field
from gendiag.rules.thresholds import VELOCITY_IGNORES_X, VELOCITY_QUIVER_SHARE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

GRID_SIZE = 15


def shows_quivers(plane: Plane) -> bool:
    """Quivers mean something on the data's own plane, or on a projection holding VELOCITY_QUIVER_SHARE of the
    data's variance."""
    return plane.identity or sum(plane.explained) >= VELOCITY_QUIVER_SHARE


def quivers(plane: Plane, data: torch.Tensor, learned: Field, exact: Field) -> Figure:
    """Two rows of quivers (learned, exact) at the quiver times over the data's bounding box on `plane`, coloured by
    the arrow's length on one scale for all panels (a colour bar says so)."""
    from matplotlib.colors import LogNorm
    data_xy = plane.project(data)
    box = bounding_box(data_xy)
    coords = grid(box, GRID_SIZE)
    points = plane.lift(coords)
    figure, axes = new_figure(2, len(QUIVER_TIMES), figsize=(2.8 * len(QUIVER_TIMES) + 1, 5.6), sharex=True,
                              sharey=True)
    panels = {(row, column): plane.project_vectors(field(points, min(t, LAST_T)))
              for column, t in enumerate(QUIVER_TIMES) for row, field in enumerate((learned, exact))}
    lengths = torch.cat([arrows.norm(dim=1) for arrows in panels.values()])
    positive = lengths[lengths > 0]
    low, high = (float(positive.quantile(0.01)), float(positive.quantile(0.99))) if len(positive) else (1.0, 1.0)
    scale = LogNorm(low, max(high, low * 10))  # lengths near t = 1 are 100× those near 0: one log scale shows both
    drawn = None
    for (row, column), arrows in panels.items():
        axis = axes[row, column]
        axis.scatter(data_xy[:400, 0], data_xy[:400, 1], s=2, color="0.7", alpha=0.5)
        drawn = axis.quiver(coords[:, 0], coords[:, 1], arrows[:, 0], arrows[:, 1], arrows.norm(dim=1),
                            cmap="viridis", norm=scale, angles="xy")
        axis.set_title(f"{('learned', 'exact')[row]}, t = {min(QUIVER_TIMES[column], LAST_T):g}", fontsize=9)
    figure.subplots_adjust(left=0.06, right=0.88, bottom=0.09, top=0.87, wspace=0.12, hspace=0.3)
    figure.colorbar(drawn, cax=figure.add_axes((0.9, 0.12, 0.012, 0.72)),
                    label="arrow length: speed in the plane\n(data units per unit t, log scale)")
    if not plane.identity:
        figure.suptitle(f"projection on the data's two leading principal components: {sum(plane.explained):.0%} "
                        "of its variance", fontsize=9)
    labels = plane.axis_labels()
    for axis in axes[-1]:
        axis.set_xlabel(labels[0], fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel(labels[1], fontsize=8)
    return figure


QUIVER_CAPTION = ("The learned (top) and exact (bottom) velocity at five times on a grid over the data (grey), arrows "
                  "coloured by their length on one scale.")
SENSITIVITY_CAPTION = ("How far the learned field is from the exact one per t, how much it varies with x and with t "
                       "relative to the exact field, and its output against t at four fixed points.")


def sensitivity(errors: dict[float, float], sensitivity_x: dict[float, float], sensitivity_t: float,
                        over_t_learned: torch.Tensor, over_t_exact: torch.Tensor, plane: Plane) -> Figure:
    """Field error per t; sensitivity to x per t and to t; the output along the first plane axis against t for a
    few fixed inputs, learned (solid) and exact (dashed)."""
    figure, axes = new_figure(1, 3, figsize=(14, 3.8))
    axes[0].plot(list(errors), list(errors.values()), "o-")
    values = [v for v in errors.values() if v > 0]
    if values and max(values) / min(values) > 10:  # a log axis only over a decade or more: no "1.00165×10⁰" ticks
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
    axes[2].set_ylabel(f"velocity along {plane.axis_labels()[0].split(' ')[0]} (data units per unit t)")
    axes[2].set_title("fixed x: learned (solid), exact (dashed)")
    figure.tight_layout()
    return figure

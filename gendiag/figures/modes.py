"""The mode-collapse figure: per unit (known modes, classes) one row of three panels: parts covered over training,
which parts are covered at each observation, and the last samples (over the modes, or as images by class)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from gendiag.figures import legend, new_figure
from gendiag.metrics.modes import HIGH_QUALITY_STDS
from gendiag.quantities.modes import CoverageTimeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SAMPLES_PER_CLASS_SHOWN = 8
CAPTION = ("Per known mode or class: how many are covered at each observation (count against the step), which ones "
           "(green covered, red missing), and the last samples over the modes (data units) or as images by class.")


def coverage_figure(modes: CoverageTimeline | None, classes: CoverageTimeline | None, samples: torch.Tensor,
                    centers: np.ndarray | None = None, stds: np.ndarray | None = None,
                    labels: np.ndarray | None = None) -> Figure:
    """The rows for the timelines that hold observations; `samples` are the last observation's kept samples, with
    their predicted `labels` for classes and the modes' `centers` and `stds` for known modes."""
    rows = [t for t in (modes, classes) if t is not None and len(t)]
    figure, axes = new_figure(len(rows), 3, figsize=(15, 4.4 * len(rows)), squeeze=False)
    for row, timeline in enumerate(rows):
        _timeline_axes(axes[row, 0], axes[row, 1], timeline)
        if timeline.unit == "mode":
            _modes_scatter(axes[row, 2], timeline, samples, centers, stds)
        else:
            _class_samples(axes[row, 2], timeline, samples, labels)
    figure.tight_layout()
    return figure


def _timeline_axes(count_axis: Axes, map_axis: Axes, timeline: CoverageTimeline) -> None:
    steps = timeline.steps
    covered = np.array([entry.coverage.covered for entry in timeline.observations], dtype=float)  # (T, K)
    plural = timeline.plural
    count_axis.plot(steps, covered.sum(axis=1), marker="o", ms=3, color="tab:blue")
    count_axis.axhline(covered.shape[1], color="gray", ls="--", lw=1, label=f"all {covered.shape[1]} {plural}")
    count_axis.set_ylim(-0.5, covered.shape[1] + 0.5)
    count_axis.set_xlabel("step")
    count_axis.set_ylabel(f"{plural} covered (count)")
    count_axis.set_title(f"{plural.capitalize()} covered over training")
    legend(count_axis, loc="lower right", fontsize=8)
    edges = np.arange(len(steps) + 1) - 0.5
    map_axis.pcolormesh(edges, np.arange(covered.shape[1] + 1) - 0.5, covered.T, cmap="RdYlGn", vmin=0, vmax=1,
                        shading="flat")
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int))
    map_axis.set_xticks(ticks, [str(steps[i]) for i in ticks])
    map_axis.set_xlabel("observation (step)")
    map_axis.set_ylabel(f"{timeline.unit} (index)")
    map_axis.set_title(f"Which {plural} are covered (green) or missing (red)")


def _modes_scatter(axis: Axes, timeline: CoverageTimeline, samples: torch.Tensor, centers: np.ndarray,
                   stds: np.ndarray) -> None:
    from matplotlib.patches import Circle

    points = samples.reshape(len(samples), -1).numpy()
    captured = timeline.last.coverage.covered
    axis.scatter(points[:, 0], points[:, 1], s=3, alpha=0.35, color="tab:blue", label="samples")
    for k, (center, std) in enumerate(zip(centers, stds)):
        color = "tab:green" if captured[k] else "tab:red"
        axis.add_patch(Circle(center[:2], HIGH_QUALITY_STDS * std, fill=False, color=color, lw=1.2))
    axis.scatter(*centers[captured, :2].T, marker="+", color="tab:green", label="captured mode")
    axis.scatter(*centers[~captured, :2].T, marker="x", color="tab:red", label="dropped mode")
    for k in np.flatnonzero(~captured):
        axis.annotate(str(k), centers[k, :2], color="tab:red", fontsize=8, xytext=(3, 3),
                      textcoords="offset points")
    axis.set_aspect("equal", adjustable="datalim")
    axis.set_xlabel("x[0] (data units)")
    axis.set_ylabel("x[1] (data units)")
    axis.set_title(f"Samples at step {timeline.last.step} over the modes "
                   f"(circles: {HIGH_QUALITY_STDS:g} std)")
    legend(axis, loc="upper right", fontsize=7)


def _class_samples(axis: Axes, timeline: CoverageTimeline, samples: torch.Tensor, labels: np.ndarray) -> None:
    n_classes = timeline.n_units
    axis.set_title(f"Samples at step {timeline.last.step}, one row per predicted class")
    axis.axis("off")
    if samples.dim() != 4 or samples.shape[1] not in (1, 3):
        axis.text(0.5, 0.5, "samples are not (N, C, H, W) images", ha="center", va="center")
        return
    images = samples.permute(0, 2, 3, 1).numpy()
    low, high = float(images.min()), float(images.max())
    images = (images - low) / (high - low) if high > low else np.zeros_like(images)
    height, width, channels = images.shape[1:]
    grid = np.ones((n_classes * (height + 1), SAMPLES_PER_CLASS_SHOWN * (width + 1), channels))
    for c in range(n_classes):
        for j, index in enumerate(np.flatnonzero(labels == c)[:SAMPLES_PER_CLASS_SHOWN]):
            top, left = c * (height + 1), j * (width + 1)
            grid[top:top + height, left:left + width] = images[index]
    axis.imshow(grid.squeeze(-1) if channels == 1 else grid, cmap="gray", vmin=0, vmax=1)
    for c in range(n_classes):
        axis.text(-2, c * (height + 1) + height / 2, str(c), ha="right", va="center", fontsize=7)

"""Figures of the data representation probe: samples of each role beside the data's distance matrix, value
histograms, the source against N(0, 1), the training source against what sampling starts from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gendiag.figures import legend, new_figure
from gendiag.flow.projection import principal_plane
from gendiag.metrics.statistics import normal_plot_positions
from gendiag.quantities.data_repr import Representation
from gendiag.quantities.representation import as_batch, image_view

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHOWN_IMAGES = 6


def samples(summary: Representation, image_shape: Any) -> Figure:
    """A few samples of each role (a montage of images, or a scatter of the first two values) beside the data's
    matrix of relative distances between samples."""
    rows = summary.rows
    views = {role: image_view(as_batch(values), image_shape) for role, values in rows.items()}
    duplicates = summary.checks["data"].render.duplicates if "data" in summary.checks else None
    heatmap = duplicates is not None and duplicates.criterion != "exact"
    figure, axes = new_figure(1, 1 + heatmap, squeeze=False, figsize=(10 if heatmap else 7, 3.4),
                                gridspec_kw={"width_ratios": [2.2, 1] if heatmap else [1]})
    axis = axes[0][0]
    if all(view is not None for view in views.values()):
        axis.imshow(montage(views), cmap="gray", interpolation="nearest")
        height = next(iter(views.values())).shape[1] + 2
        axis.set_yticks([height * (i + 0.5) for i in range(len(views))], list(views))
        axis.set_xticks([])
        axis.set_title(f"{SHOWN_IMAGES} samples per role, evenly spaced over the kept rows", fontsize=9)
    else:
        for role, values in rows.items():
            second = values[:, 1] if values.shape[1] > 1 else torch.zeros(len(values))
            axis.scatter(values[:, 0], second, s=4, alpha=0.5, label=role)
        axis.set_title("first two values of each sample", fontsize=9)
        legend(axis, fontsize=8)
    if heatmap:
        shown = duplicates.relative_distances[:64, :64]
        picture = axes[0][1].imshow(shown, cmap="viridis", vmin=0, vmax=max(1.5, float(np.nanmax(shown))))
        axes[0][1].set_title(f"data: distance / own spread\n{duplicates.effective_distinct:.1f} distinct in "
                             f"{duplicates.samples}", fontsize=9)
        axes[0][1].set_xlabel("sample", fontsize=8)
        figure.colorbar(picture, ax=axes[0][1], fraction=0.046)
    figure.tight_layout()
    return figure


def values(summary: Representation) -> Figure:
    """A histogram of the values of each role."""
    figure, axes = new_figure(1, len(summary.checks), squeeze=False, figsize=(4.5 * len(summary.checks), 3.2))
    for axis, (role, checks) in zip(axes[0], summary.checks.items()):
        values = checks.values
        edges = values.histogram_edges
        axis.hist((edges[:-1] + edges[1:]) / 2, bins=edges, weights=values.histogram_counts, log=True)
        axis.set_title(f"{role} values: {values.distinct} distinct, {values.extreme_fraction:.0%} at the ends",
                       fontsize=9)
        axis.set_xlabel("value")
    axes[0][0].set_ylabel("count")
    figure.tight_layout()
    return figure


def sources(training: torch.Tensor, others: dict[str, torch.Tensor]) -> Figure:
    """The training source beside what sampling starts from: a scatter on the plane of the pooled rows' two leading
    principal components (the data space itself for 2D points), and histograms of the values along the first."""
    sets = {"training source": training.reshape(training.shape[0], -1).double()}
    names = {"sampler": "sampler's first inputs", "declared": "declared source"}
    sets.update({names[label]: rows.reshape(rows.shape[0], -1).double() for label, rows in others.items()
                 if rows[0].numel() == sets["training source"].shape[1]})
    figure, axes = new_figure(1, 2, figsize=(10, 4))
    pooled = torch.cat(list(sets.values()))
    if pooled.shape[1] >= 2:
        plane = principal_plane(pooled)
        projected = {name: plane.project(rows) for name, rows in sets.items()}
        labels = plane.axis_labels()
    else:
        projected = {name: torch.cat([rows, torch.zeros_like(rows)], 1) for name, rows in sets.items()}
        labels = ("x[0]", "")
    for name, xy in projected.items():
        axes[0].scatter(xy[:, 0], xy[:, 1], s=5, alpha=0.5, label=f"{name} ({len(xy)})")
        axes[1].hist(xy[:, 0].numpy(), bins=40, density=True, histtype="step", label=name)
    axes[0].set_xlabel(labels[0])
    axes[0].set_ylabel(labels[1])
    axes[0].set_title("source rows", fontsize=9)
    axes[0].legend(fontsize=8, markerscale=2)
    axes[1].set_xlabel(labels[0])
    axes[1].set_ylabel("density")
    axes[1].set_title("along the first axis", fontsize=9)
    figure.tight_layout()
    return figure


def montage(views: dict[str, torch.Tensor]) -> np.ndarray:
    """SHOWN_IMAGES evenly spaced images of each role, one role per row, each scaled to [0, 1], 2-pixel gaps; the
    image's row 0 (the smallest y of a rendered point cloud) at the bottom."""
    lines = []
    for view in views.values():
        picks = np.linspace(0, len(view) - 1, SHOWN_IMAGES).round().astype(int)
        tiles = []
        for index in picks:
            image = view[index].flip(0).numpy()
            low, high = image.min(), image.max()
            tiles.append(np.pad((image - low) / (high - low) if high > low else image * 0, 1, constant_values=1))
        lines.append(np.concatenate(tiles, axis=1))
    return np.concatenate(lines, axis=0)


def source_qq(source: torch.Tensor) -> Figure:
    """The source's values against N(0, 1) quantiles."""
    values = source.reshape(-1).numpy()
    if values.size > 4000:
        values = values[np.linspace(0, values.size - 1, 4000).round().astype(int)]
    ordered, theory = np.sort(values), normal_plot_positions(values.size)
    figure, axis = new_figure(figsize=(4.2, 4))
    axis.plot(theory, ordered, ".", markersize=2, label="source values")
    axis.plot(theory, theory, color="black", linewidth=1, label="N(0, 1)")
    axis.set_xlabel("N(0, 1) quantile")
    axis.set_ylabel("source value quantile")
    axis.set_title("source against N(0, 1)")
    legend(axis)
    figure.tight_layout()
    return figure

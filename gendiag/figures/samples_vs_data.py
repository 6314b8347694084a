"""The samples-against-data figures: the samples beside the kept data rows (an image grid of each where a sample
reads as an image, else a scatter over the data in its principal plane, the data space itself for 2-D points),
and the distances of both to the data mean; a lighter snapshot of the first part for TensorBoard at each
`observe_samples`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gendiag.figures import new_figure
from gendiag.flow.projection import principal_plane

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gendiag.metrics.samples_vs_data import SampleGap


GRID = 6  # an image grid shows GRID x GRID rows
CAPTION = ("The last samples beside the kept data rows (image grids, or a scatter on the data's own axes or principal "
           "plane, in data units), and each row's distance to the data mean (data units) as a share of its set.")


def image_shape(sample_shape: tuple[int, ...], fact: Any = None) -> tuple[int, int, int] | None:
    """(C, H, W) of one sample where it reads as an image: a (C, H, W) sample with 1 or 3 channels, an (H, W) one of
    at least 8 x 8, or a flat one that the fact `image_shape` describes; None otherwise."""
    if len(sample_shape) == 3 and sample_shape[0] in (1, 3):
        return (sample_shape[0], sample_shape[1], sample_shape[2])
    if len(sample_shape) == 2 and min(sample_shape) >= 8:
        return (1, sample_shape[0], sample_shape[1])
    if fact is not None:
        told = tuple(int(v) for v in fact)
        told = (1, *told) if len(told) == 2 else told
        if len(told) == 3 and told[0] in (1, 3) and math.prod(told) == math.prod(sample_shape):
            return (told[0], told[1], told[2])
    return None


def image_grid(rows: torch.Tensor, shape: tuple[int, int, int], low: float, high: float) -> np.ndarray:
    """Up to GRID x GRID flat rows (a square of side ceil(sqrt(rows)) at most GRID) as one (H', W', C) picture in [0, 1] (values mapped from [low, high]), one pixel of
    mid-grey between the images (white or black would merge with an image's own edge)."""
    channels, height, width = shape
    images = rows[:GRID * GRID].reshape(-1, channels, height, width).double()
    images = ((images - low) / (high - low if high > low else 1.0)).clamp(0, 1).numpy()
    side = min(GRID, math.ceil(math.sqrt(len(images))))  # fewer rows: a smaller square, not a grey one
    picture = np.full(((height + 1) * side - 1, (width + 1) * side - 1, channels), 0.5)
    for index, image in enumerate(images):
        top, left = (index // side) * (height + 1), (index % side) * (width + 1)
        picture[top:top + height, left:left + width] = image.transpose(1, 2, 0)
    return picture


def draw_side_by_side(axes: Any, samples: torch.Tensor, data: torch.Tensor, shape: tuple[int, int, int] | None,
                      title: str) -> None:
    """The samples beside the data: two image grids on `axes` (a pair) where `shape` is given, else one scatter of
    the samples over the data on `axes[0]` (the data's principal plane; x[0], x[1] for 2-D points)."""
    if shape is not None:
        low, high = (float(v) for v in torch.quantile(data[:GRID * GRID].double().flatten(),
                                                      torch.tensor([0.005, 0.995], dtype=torch.float64)))
        for axis, rows, what in ((axes[0], samples, "samples"), (axes[1], data, "data (kept rows)")):
            picture = image_grid(rows, shape, low, high)
            axis.imshow(picture[..., 0] if shape[0] == 1 else picture, cmap="gray", vmin=0, vmax=1,
                        interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"{what}: {min(len(rows), GRID * GRID)} of {len(rows)}", fontsize=10)
        axes[0].figure.suptitle(title, fontsize=10)
        return
    axis = axes[0]
    if data.shape[1] == 1:  # one value per row: the value against the row's position
        data_xy = torch.stack([data[:, 0], torch.arange(len(data)) / len(data)], 1).numpy()
        samples_xy = torch.stack([samples[:, 0], torch.arange(len(samples)) / len(samples)], 1).numpy()
        xlabel, ylabel = "x[0] (data units)", "row (spread out; no unit)"
    else:
        plane = principal_plane(data)
        data_xy, samples_xy = plane.project(data).numpy(), plane.project(samples).numpy()
        xlabel, ylabel = (f"{label[:-1]}, data units)" if label.endswith(")") else f"{label} (data units)"
                          for label in plane.axis_labels())
    axis.scatter(data_xy[:, 0], data_xy[:, 1], s=3, alpha=0.4, color="tab:gray", label="data (kept rows)")
    axis.scatter(samples_xy[:, 0], samples_xy[:, 1], s=3, alpha=0.5, color="tab:red", label="samples")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)


def samples_snapshot(samples: torch.Tensor, data: torch.Tensor, shape: tuple[int, int, int] | None,
                     step: int) -> Figure:
    """The samples of one `observe_samples` beside the data, for TensorBoard's images over time."""
    figure, axes = new_figure(1, 2 if shape is not None else 1, figsize=(8, 4.2) if shape is not None else (5, 4.3))
    draw_side_by_side(axes if shape is not None else [axes], samples, data, shape, f"samples at step {step}")
    figure.tight_layout()
    return figure


def samples_figure(samples: torch.Tensor, data: torch.Tensor, gap: SampleGap,
                   shape: tuple[int, int, int] | None = None) -> Figure:
    """The samples beside the data (image grids, or a scatter in the data's principal plane), and both distances
    to the data mean."""
    if shape is not None:
        figure, axes = new_figure(1, 3, figsize=(13, 4.3))
        draw_side_by_side(axes[:2], samples, data, shape, f"Samples beside the data (std ratio {gap.std_ratio:.2f})")
    else:
        figure, axes = new_figure(1, 2, figsize=(11, 4.3))
        draw_side_by_side(axes, samples, data, None, f"Samples over the data (std ratio {gap.std_ratio:.2f})")
    axis = axes[-1]
    mean = data.double().mean(0)
    data_norms = (data.double() - mean).norm(dim=1).numpy()
    sample_norms = (samples.double() - mean).norm(dim=1).numpy()
    bins = np.linspace(0, max(data_norms.max(), sample_norms.max()) * 1.02 + 1e-12, 50)
    for values, label, color in ((data_norms, "data", "tab:gray"), (sample_norms, "samples", "tab:red")):
        axis.hist(values, bins=bins, alpha=0.55, color=color, label=label, weights=np.full(len(values), 1 / len(values)))
    axis.set_xlabel("distance to the data mean (data units)")
    axis.set_ylabel("share of its rows")
    axis.set_title(f"Mean offset {gap.mean_offset:.2f} spreads; W2 {gap.w2:.3g} (floor "
                   f"{gap.w2_floor:.3g}), coverage {gap.coverage:.2f}", fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


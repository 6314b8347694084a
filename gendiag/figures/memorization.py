"""The memorization figure: distance ratios of generated and held-out samples against the copy threshold, and the
closest generated samples beside their nearest training samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.memorization import Copying
from gendiag.rules.memorization import closest_copies

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CAPTION = ("Each sample's distance to its nearest training sample over that sample's own neighbour distance (a ratio, "
           "log scale) for generated and held-out real samples, with the copy threshold; and the closest copies.")


def copies_figure(copying: Copying, shape: tuple[int, ...] | None) -> Figure:
    """Histograms of the distance ratios (generated and held-out) with the copy threshold, and the closest
    generated samples beside their nearest training samples (images of `shape`) or over the training data."""
    result, generated, train = copying.result, copying.generated, copying.train
    images = shape is not None and len(shape) == 3 and shape[0] in (1, 3)
    figure, axes = new_figure(1, 2, figsize=(12, 4.2))
    bins = np.geomspace(max(min(result.generated_ratio.min(), result.heldout_ratio.min()), 1e-6),
                        max(result.generated_ratio.max(), result.heldout_ratio.max(), 1e-5), 40)
    for values, label, color in ((result.heldout_ratio, "held-out real", "tab:green"),
                                 (result.generated_ratio, "generated", "tab:red")):
        axes[0].hist(np.clip(values, bins[0], None), bins=bins, alpha=0.6, label=label, color=color,
                     weights=np.full(len(values), 1 / len(values)))
    axes[0].set_ylabel("share of samples")
    axes[0].axvline(result.copy_threshold, color="black", ls="--", lw=1, label="copy threshold")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("distance to nearest training sample / its neighbour distance (ratio)")
    axes[0].set_title(f"Near-copies: {result.copy_share:.1%} of generated (z = {result.mann_whitney_z:.1f})")
    legend(axes[0], fontsize=8)
    closest = closest_copies(copying)
    if images:
        channels, height, width = shape
        grid = np.ones((2 * height + 1, len(closest) * (width + 1), channels))
        for j, index in enumerate(closest):
            for row, source in enumerate((generated[index], train[result.nearest_train[index]])):
                image = source.reshape(channels, height, width).transpose(1, 2, 0)
                low, high = image.min(), image.max()
                image = (image - low) / (high - low) if high > low else np.zeros_like(image)
                top, left = row * (height + 1), j * (width + 1)
                grid[top:top + height, left:left + width] = image
        axes[1].imshow(grid.squeeze(-1) if channels == 1 else grid, cmap="gray", vmin=0, vmax=1)
        axes[1].axis("off")
        axes[1].set_title("Closest generated samples (top), nearest training ones (bottom)", fontsize=10)
    else:
        axes[1].scatter(train[:, 0], train[:, 1], s=2, color="tab:gray", alpha=0.4, label="training (kept)")
        copies = result.copies
        axes[1].scatter(generated[~copies, 0], generated[~copies, 1], s=3, color="tab:blue", alpha=0.5,
                        label="generated")
        axes[1].scatter(generated[copies, 0], generated[copies, 1], s=6, color="tab:red", label="near-copies")
        axes[1].set_title("Generated samples over the training data (first two coordinates)")
        axes[1].set_xlabel("x[0] (data units)")
        axes[1].set_ylabel("x[1] (data units)")
        legend(axes[1], fontsize=8)
    figure.tight_layout()
    return figure

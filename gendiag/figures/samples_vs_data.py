"""The samples-against-data figure: the samples over the kept data rows (in the data's principal plane), and the
distances of both to the data mean."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from gendiag.figures import new_figure
from gendiag.flow.projection import principal_plane

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gendiag.metrics.samples_vs_data import SampleGap


def samples_figure(samples: torch.Tensor, data: torch.Tensor, gap: SampleGap) -> Figure:
    """The samples over the data in its principal plane, and both distances to the data mean."""
    if data.shape[1] == 1:  # one value per row: the value against the row's position
        data_xy = torch.stack([data[:, 0], torch.arange(len(data)) / len(data)], 1).numpy()
        samples_xy = torch.stack([samples[:, 0], torch.arange(len(samples)) / len(samples)], 1).numpy()
        xlabel, ylabel = "x[0]", "row (spread out)"
    else:
        plane = principal_plane(data)
        data_xy, samples_xy = plane.project(data).numpy(), plane.project(samples).numpy()
        xlabel, ylabel = plane.axis_labels()
    figure, axes = new_figure(1, 2, figsize=(11, 4.3))
    axes[0].scatter(data_xy[:, 0], data_xy[:, 1], s=3, alpha=0.4, color="tab:gray", label="data (kept rows)")
    axes[0].scatter(samples_xy[:, 0], samples_xy[:, 1], s=3, alpha=0.5, color="tab:red", label="samples")
    axes[0].set_xlabel(xlabel)
    axes[0].set_ylabel(ylabel)
    axes[0].set_title(f"Samples over the data (std ratio {gap.std_ratio:.2f})", fontsize=10)
    axes[0].legend(fontsize=8)
    mean = data.double().mean(0)
    data_norms = (data.double() - mean).norm(dim=1).numpy()
    sample_norms = (samples.double() - mean).norm(dim=1).numpy()
    bins = np.linspace(0, max(data_norms.max(), sample_norms.max()) * 1.02 + 1e-12, 50)
    for values, label, color in ((data_norms, "data", "tab:gray"), (sample_norms, "samples", "tab:red")):
        axes[1].hist(values, bins=bins, alpha=0.55, color=color, label=label,
                     weights=np.full(len(values), 1 / len(values)))
    axes[1].set_xlabel("distance to the data mean")
    axes[1].set_ylabel("share of rows")
    axes[1].set_title(f"Mean offset {gap.mean_offset:.2f} spreads; W2 {gap.w2:.3g} (floor "
                      f"{gap.w2_floor:.3g}), coverage {gap.coverage:.2f}", fontsize=10)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    return figure


"""The loss-by-t figure (mean and spread per bin, each bin's shares, the mean loss by t over training) and the
Loss by t section's prose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gendiag.figures import legend, new_figure
from gendiag.quantities.loss_by_t import BINS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def loss_by_t_figure(summary: dict[str, Any], chunks: list[torch.Tensor],
                     chunk_steps: list[tuple[int, int]]) -> "Figure":
    """Mean ± std of the loss per bin of t, each bin's share of the loss and of its variance, and the mean loss per
    bin over the chunks of training."""
    figure, axes = new_figure(1, 3, figsize=(14, 3.8))
    centers = (np.arange(BINS) + 0.5) / BINS
    width = 0.9 / BINS
    mean, std = np.array(summary["bin_mean"]), np.array(summary["bin_std"])
    axes[0].bar(centers, mean, width=width, color="tab:blue", alpha=0.7, label="mean loss")
    axes[0].errorbar(centers, mean, yerr=std, fmt="none", ecolor="k", lw=0.8, label="± std")
    axes[0].set_title(f"loss by t (steps {summary['late_steps'][0]}–{summary['late_steps'][1]})")
    if mean.min() > 0 and mean.max() / mean.min() > 20:
        axes[0].set_yscale("log")
    axes[1].bar(centers - width / 4, summary["loss_share"], width=width / 2, label="share of loss")
    axes[1].bar(centers + width / 4, summary["variance_share"], width=width / 2, label="share of variance")
    axes[1].axhline(1 / BINS, color="gray", ls=":", lw=1, label="even spread")
    axes[1].set_title("each t bin's share")
    axes[0].set_ylabel("per-sample loss (as logged)")
    axes[1].set_ylabel("share of the late-run total")
    for axis in axes[:2]:
        axis.set_xlabel("t")
        legend(axis, fontsize=8)
    matrix = np.stack([(c[1, :BINS] / c[0, :BINS].clamp(min=1)).numpy() for c in chunks])
    positive = matrix[matrix > 0]
    shown = np.log10(np.where(matrix > 0, matrix, np.nan)) if len(positive) else matrix
    image = axes[2].imshow(shown.T, origin="lower", aspect="auto", cmap="viridis",
                           extent=(chunk_steps[0][0], chunk_steps[-1][1], 0, 1))
    figure.colorbar(image, ax=axes[2], label="log10 mean loss" if len(positive) else "mean loss")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("t")
    axes[2].set_title("mean loss by t over training")
    figure.tight_layout()
    return figure


LOSS_BY_T_CAPTION = ("Per-sample loss by bin of t in the second half of training: mean ± std, each bin's share of the "
                     "loss and of its variance (10% each when even), and the mean per bin over training.")


def loss_by_t_text(summary: dict[str, Any]) -> str:
    """The Loss by t section's text: samples, the largest shares, the tail exponents."""
    lines = [f"{summary['samples']} samples in steps {summary['late_steps'][0]}–{summary['late_steps'][1]} (the "
             f"second half of training), in {BINS} bins of t. The largest share of the expected loss is "
             f"{summary['worst_loss_share']:.0%} (t {summary['worst_loss_bin']}), the largest share of its variance "
             f"{summary['worst_variance_share']:.0%} (t {summary['worst_variance_bin']}); an even spread is 10%."]
    for tail in summary["tails"]:
        if tail["slope"] is not None:
            near = "1 - t" if tail["end"] == "t -> 1" else "t"
            lines.append(f"As {tail['end']} the {tail['quantity']} scales like ({near})^{tail['slope']:.2f}; at "
                         f"{near} ≈ {tail['outer_distance']:.2g} it is {tail['outer_ratio']:.3g}× the median "
                         "over t.")
    return " ".join(lines)

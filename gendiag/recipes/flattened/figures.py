"""The case's figures: generated pictures at checkpoints, their similarities over iterations, and the loss."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import NullLocator

from gendiag.figures import legend
from gendiag.quantities.flattened import cosine
from gendiag.recipes.flattened.checkpoints import Checkpoint, Reference

SCATTER_POINTS = 20_000


CHECKPOINT_CAPTION = ("The target, two start pictures, and the pictures generated from those starts at each checkpoint, "
                      "with their cosine similarity to the target (T) and to their start (S).")
SIMILARITY_CAPTION = ("Similarity of the generated pictures to the target and to their own start picture over training; "
                      "the dashed line is where an untrained flow (start against target) sits.")
LOSS_CAPTION = ("The batch loss at every iteration (log scale), and every draw's loss against its distance 1 − t to "
                "t = 1 (log-log): the draws nearest t = 1 carry the loss.")


def checkpoint_figure(checkpoints: list[Checkpoint], reference: Reference) -> plt.Figure:
    size = int(round(reference.target.shape[1] ** 0.5))
    rows = min(2, len(reference.starts))
    columns = 2 + len(checkpoints)
    top = float(reference.target.max()) or 1.0
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    for row in range(rows):
        panels = [(reference.target[0], "target"), (reference.starts[row], "start")]
        panels += [(c.images[row], f"it {c.iteration}\ncos T {float(cosine(c.images[row:row + 1], reference.target)):.2f}"
                    f" S {float(cosine(c.images[row:row + 1], reference.starts[row:row + 1])):.2f}")
                   for c in checkpoints]
        for axis, (image, title) in zip(axes[row], panels):
            axis.imshow(image.reshape(size, size).numpy(), cmap="gray", vmin=0, vmax=top, origin="lower")
            axis.set_title(title, fontsize=7)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle("generated pictures at checkpoints (grey scale clipped to the target's range)", fontsize=9)
    figure.tight_layout()
    return figure


def similarity_figure(checkpoints: list[Checkpoint], baseline_cos: float, baseline_iou: float) -> plt.Figure:
    iterations = [c.iteration for c in checkpoints]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, (metric, baseline) in zip(axes, (("cos", baseline_cos), ("iou", baseline_iou))):
        axis.plot(iterations, [getattr(c, f"{metric}_target") for c in checkpoints], "o-", label="to target")
        axis.plot(iterations, [getattr(c, f"{metric}_source") for c in checkpoints], "s-", label="to start picture")
        axis.axhline(baseline, color="grey", ls="--", lw=1, label="start vs target (untrained level)")
        axis.set_xscale("symlog", linthresh=5)  # iteration 0 and the decades after it on one axis
        axis.set_xlim(0, max(iterations) * 1.15 if iterations else 1)
        axis.set_xticks(iterations, [str(i) for i in iterations], fontsize=7)  # the checkpoints, no "−10⁰" ticks
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xlabel("iteration (symmetric log scale)")
        axis.set_ylabel("cosine similarity" if metric == "cos" else "IoU of binarised pixels")
        legend(axis, fontsize=7)
    figure.tight_layout()
    return figure


def loss_figure(losses: list[float], times: list[torch.Tensor], per_sample: list[torch.Tensor], kind: str,
                resumed_at: int) -> plt.Figure:
    """The batch loss over iterations, and every draw's loss against 1 − t (the loss-by-t probe quantifies it)."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    if losses:
        steps = np.arange(resumed_at + 1, resumed_at + 1 + len(losses))
        axes[0].semilogy(steps, losses, lw=0.8)
        axes[0].set_title(f"loss ({kind}); last {losses[-1]:.3g}, max {max(losses):.3g}", fontsize=9)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("batch loss (mean squared error)")
    if times:
        t_all = torch.cat(times).numpy()
        loss_all = torch.cat(per_sample).numpy()
        shown = np.random.default_rng(0).permutation(len(t_all))[:SCATTER_POINTS]
        axes[1].scatter(1 - t_all[shown], loss_all[shown], s=2, alpha=0.3)
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
    axes[1].set_xlabel("1 − t")
    axes[1].set_ylabel("per-sample loss")
    axes[1].set_title("each draw's loss against its distance to t = 1", fontsize=9)
    figure.tight_layout()
    return figure

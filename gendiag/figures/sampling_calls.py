"""Figure of the sampling-calls probe: the sampler's state drifting from its start call by call, and the times the
network was trained on against the times the sampler calls it with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gendiag.figures import legend, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def sampling_calls_figure(motion: dict[str, Any] | None, coverage: dict[str, Any] | None) -> "Figure":
    """Left: each sampling call's input, its relative RMS distance from the block's first call's. Right: per bin of
    the sampler's range of t, the share of training times and of sampling calls, untrained bins shaded."""
    figure, axes = new_figure(1, 2, figsize=(11, 3.8))
    if motion is not None:
        axes[0].plot(range(len(motion["changes"])), motion["changes"], "o-", ms=3, color="tab:blue")
        axes[0].set_title(f"`{motion['model']}`: state vs the block's first call (step {motion['step']})")
    axes[0].set_xlabel("sampling call")
    axes[0].set_ylabel("relative RMS distance from the first call's x")
    if coverage is not None:
        edges = coverage["edges"]
        centers = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
        width = (edges[1] - edges[0]) * 0.4
        total = sum(coverage["train_counts"]) or 1
        axes[1].bar([c - width / 2 for c in centers], [n / total for n in coverage["train_counts"]], width=width,
                    color="tab:blue", label="training times")
        axes[1].bar([c + width / 2 for c in centers], coverage["sampling_share"], width=width, color="tab:orange",
                    label="sampling calls")
        for index in coverage["untrained_bins"]:
            axes[1].axvspan(edges[index], edges[index + 1], color="red", alpha=0.12, lw=0)
        legend(axes[1], fontsize=8)
    axes[1].set_xlabel("t (the sampler's range)")
    axes[1].set_ylabel("share")
    axes[1].set_title("times trained on vs times sampled (red: never trained)")
    figure.tight_layout()
    return figure

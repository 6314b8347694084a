"""The multi-process figures, from the fingerprints every rank sent at the end (`gendiag.quantities.distributed`):
`ddp-same-noise-across-ranks` (each other rank's draws against rank 0's, step for step) and
`distributed-sampler-epoch-unset` (each epoch's batches laid over the previous ones)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendiag.figures import legend, new_figure
from gendiag.rules.thresholds import DISTRIBUTED_REPEAT_SHARE, DISTRIBUTED_SAME_SHARE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NOISE_CAPTION = ("Each step's draw on another rank against the same step's draw on rank 0 (the sum of the drawn "
                 "values): ranks seeded apart scatter, points on the diagonal are identical draws; the last panel "
                 f"gives the share of identical steps against the {DISTRIBUTED_SAME_SHARE:.0%} that names them.")
ORDER_CAPTION = ("Each data batch's fingerprint (the sum of its values) against its place in the period the batches "
                 "repeat with, one line per period: a sampler reshuffled every epoch draws different lines, lines "
                 "laid on one another are the same order every epoch.")
LABELS = {"times": "times", "call_times": "call times", "noise": "noise"}  # the drawn streams, short for the axes
MAX_EPOCHS = 10  # periods drawn per rank: more lines on one another show nothing more
MAX_RANKS = 4  # panels of the epoch order figure: the first ranks named show it as well as all of them


def same_noise_figure(streams: dict[str, list[list[float]]], shares: list[tuple[str, int, float]]) -> Figure:
    """One panel per drawn stream (`streams[stream][rank]`: the sum of each step's draw on that rank, in order;
    `stream` a key of LABELS, "call_times" the times a watched network was called with): every other rank's values
    against rank 0's at the same step, with the diagonal; and a last panel of the share of equal steps per
    (stream, rank) in `shares`, against DISTRIBUTED_SAME_SHARE."""
    figure, axes = new_figure(1, len(streams) + 1, figsize=(4.2 * (len(streams) + 1), 3.8), squeeze=False)
    for axis, (stream, ranks) in zip(axes[0], streams.items()):
        name = LABELS.get(stream, stream)
        reference = ranks[0]
        for rank, values in enumerate(ranks[1:], start=1):
            steps = min(len(reference), len(values))
            axis.scatter(reference[:steps], values[:steps], s=8, alpha=0.6, label=f"rank {rank}")
        low = min(min(values) for values in ranks if values)
        high = max(max(values) for values in ranks if values)
        axis.plot([low, high], [low, high], color="black", ls="--", lw=1, label="identical draws")
        axis.set_title(f"{name}: each step, rank 0 against the others", fontsize=10)
        axis.set_xlabel(f"rank 0: sum of the step's {name}")
        axis.set_ylabel(f"other rank: sum of its {name}")
        legend(axis, fontsize=8)
    bars = axes[0][-1]
    labels = [f"{LABELS.get(stream, stream)}\nrank {rank}" for stream, rank, _ in shares]
    bars.bar(range(len(shares)), [share for _, _, share in shares], color="tab:blue")
    bars.axhline(DISTRIBUTED_SAME_SHARE, color="tab:red", ls="--", lw=1,
                 label=f"{DISTRIBUTED_SAME_SHARE:.0%}: the rank draws as rank 0")
    bars.set_xticks(range(len(shares)), labels, fontsize=8)
    bars.set_ylim(0, 1.25)  # room above full bars for the legend
    bars.set_title("Share of steps drawn identically to rank 0", fontsize=10)
    bars.set_ylabel("share of compared steps")
    legend(bars, fontsize=8, loc="upper right")
    figure.tight_layout()
    return figure


def epoch_order_figure(ranks: list[tuple[int, int, float, list[float]]]) -> Figure:
    """One panel per rank (`(rank, period, share repeated, the sum of each data batch in order)`): the sums against
    the batch's place in its period, one line per period (the first MAX_EPOCHS), for the first MAX_RANKS ranks."""
    ranks = ranks[:MAX_RANKS]
    figure, axes = new_figure(1, len(ranks), figsize=(5.5 * len(ranks), 3.8), squeeze=False)
    for axis, (rank, period, share, sums) in zip(axes[0], ranks):
        epochs = -(-len(sums) // period)
        drawn = min(epochs, MAX_EPOCHS)
        for epoch in range(drawn):
            values = sums[epoch * period:(epoch + 1) * period]
            width = 4.0 - 3.0 * epoch / max(drawn - 1, 1)  # later periods thinner: lines laid on one another show
            axis.plot(range(len(values)), values, marker="o", ms=3, lw=width, alpha=0.8, label=f"period {epoch + 1}")
        shown = f"the first {MAX_EPOCHS} of {epochs}" if epochs > MAX_EPOCHS else f"all {epochs}"
        axis.set_title(f"rank {rank}: the batches repeat every {period} ({share:.0%} of them; named from "
                       f"{DISTRIBUTED_REPEAT_SHARE:.0%})\n{shown} periods drawn", fontsize=10)
        axis.set_xlabel(f"batch within the period of {period}")
        axis.set_ylabel("sum of the batch's values")
        legend(axis, fontsize=7, ncol=2)
    figure.tight_layout()
    return figure

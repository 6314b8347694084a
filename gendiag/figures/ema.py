"""The EMA figure (`ema-lagging`): how far each EMA copy and the network it follows moved from their starting
weights over the run, against the distance the copy must cover not to lag."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendiag.figures import legend, new_figure
from gendiag.quantities.ema import EmaReading
from gendiag.rules.thresholds import EMA_LAG_CRITICAL, EMA_LAG_WARNING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CAPTION = ("Euclidean distance of the network's and its EMA copy's weights from their weights when the copy was "
           f"watched, over the steps; a copy under {EMA_LAG_WARNING:.0%} of the network's distance (dashed) lags, "
           f"under {EMA_LAG_CRITICAL:.0%} (dotted) it is close to its initial weights.")


def ema_figure(tracks: list[tuple[str, str, int, list[EmaReading]]]) -> Figure:
    """One panel per EMA copy (`(copy, network it follows, step watched, readings)`): both distances moved from the
    step the copy was watched (0 there) over the read steps, with the lines EMA_LAG_WARNING and EMA_LAG_CRITICAL of
    the network's distance."""
    figure, axes = new_figure(1, len(tracks), figsize=(5.5 * len(tracks), 3.8), squeeze=False)
    for axis, (ema, follows, start, readings) in zip(axes[0], tracks):
        steps = [start] + [reading.step for reading in readings if reading.step > start]
        model = [0.0] + [reading.model_moved for reading in readings if reading.step > start]
        copy = [0.0] + [reading.ema_moved for reading in readings if reading.step > start]
        axis.plot(steps, model, color="tab:blue", lw=1.4, marker="o", ms=2.5, label=f"`{follows}` (network)")
        axis.plot(steps, copy, color="tab:orange", lw=1.4, marker="o", ms=2.5, label=f"`{ema}` (EMA copy)")
        axis.plot(steps, [EMA_LAG_WARNING * moved for moved in model], color="tab:red", ls="--", lw=1,
                  label=f"{EMA_LAG_WARNING:.0%} of the network's distance")
        axis.plot(steps, [EMA_LAG_CRITICAL * moved for moved in model], color="tab:red", ls=":", lw=1,
                  label=f"{EMA_LAG_CRITICAL:.0%} of it")
        ratio = copy[-1] / model[-1] if model[-1] else 0.0
        axis.set_title(f"`{ema}` moved {ratio:.0%} as far as `{follows}`", fontsize=10)
        axis.set_xlabel("step")
        axis.set_ylabel("distance from the starting weights (L2)")
        legend(axis, fontsize=8)
    figure.tight_layout()
    return figure

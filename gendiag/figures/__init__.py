"""Small helpers shared by the figures of the probes and recipes."""

from __future__ import annotations

from typing import Any

DPI = 110  # figures are laid out and saved at this one resolution
TICKS = 5  # at most this many labelled ticks an axis: each tick is several artists laid out twice, at layout and draw
STEPS = (1, 2, 2.5, 5, 10)  # tick spacings, as matplotlib's default locator picks them


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **subplots: Any) -> tuple[Any, Any]:
    """`(figure, axes)` as `plt.subplots` returns them, on a figure drawn by the Agg canvas without pyplot: no
    global figure list (nothing to close), the user's backend left alone, and `import gendiag` does not import
    pyplot. Its `tight_layout()` is computed when the figure is drawn, not at the call. Made at the dpi it is saved at, so the text measured by `tight_layout` is measured once; linear axes
    get at most `TICKS` ticks (a log scale set later brings its own); spines are left out of `tight_layout` (they
    lie on the axes' own box, which it counts, and measuring them updates every tick again)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, **subplots)
    _defer_tight_layout(figure)
    for axis in figure.axes:
        axis.xaxis.set_major_locator(MaxNLocator(TICKS, steps=STEPS))
        axis.yaxis.set_major_locator(MaxNLocator(TICKS, steps=STEPS))
        for spine in axis.spines.values():
            spine.set_in_layout(False)
    return figure, axes


def _defer_tight_layout(figure: Any) -> None:
    """`figure.tight_layout(**kwargs)` sets the tight layout engine instead of laying out now: the layout is
    computed once, when the figure is drawn (in a child process, see `gendiag.figures.drawing`)."""

    def tight_layout(**kwargs: Any) -> None:
        figure.set_layout_engine("tight", **kwargs)

    figure.tight_layout = tight_layout


def legend(axis: Any, **kwargs: Any) -> None:
    """`axis.legend(**kwargs)` where the axis has labelled artists; none (an empty panel) draws no legend, where
    matplotlib would warn "No artists with labels found to put in legend"."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(**kwargs)

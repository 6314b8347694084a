"""Small helpers shared by the figures of the probes and recipes."""

from __future__ import annotations

from typing import Any


def legend(axis: Any, **kwargs: Any) -> None:
    """`axis.legend(**kwargs)` where the axis has labelled artists; none (an empty panel) draws no legend, where
    matplotlib would warn "No artists with labels found to put in legend"."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(**kwargs)

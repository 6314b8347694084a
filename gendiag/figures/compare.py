"""The charts of `gendiag compare`: one quantity per chart, every run's curve on it, read from the runs'
metrics.csv (the same series TensorBoard holds)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gendiag.figures import legend, new_figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

BY_T = re.compile(r"loss_by_t/mean/t([0-9.]+)-([0-9.]+)")
LOG_RANGE = 30.0  # a positive curve spanning more than this factor is drawn on a log axis


@dataclass(frozen=True)
class Overlay:
    """One chart: `tag` over steps, or with `by_t` the last chunk's mean loss per bin of t."""

    title: str
    tag: str
    ylabel: str
    by_t: bool = False


OVERLAYS = {
    "loss": Overlay("training loss over steps", "loss/train", "training loss (thin: per step; thick: running mean)"),
    "loss_by_t": Overlay("mean loss by t at the end of training", "loss_by_t/mean/", "mean loss in the bin of t",
                         by_t=True),
    "gradient_norm": Overlay("global gradient norm over steps", "grad/global_norm", "global gradient norm"),
}


def overlay_figure(overlay: Overlay, runs: dict[str, "pd.DataFrame"]) -> "Figure | None":
    """Every run's curve of `overlay` on one chart (runs: label -> metrics table); None where no run has it."""
    curves = {label: _curve(overlay, table) for label, table in runs.items()}
    curves = {label: curve for label, curve in curves.items() if curve is not None}
    if not curves:
        return None
    figure, axis = new_figure(figsize=(8, 4))
    colours = [f"C{i}" for i in range(10)]
    for index, (label, (x, y)) in enumerate(curves.items()):
        colour = colours[index % len(colours)]
        if overlay.by_t:
            axis.plot(x, y, marker="o", lw=1.6, color=colour, label=label)
            continue
        axis.plot(x, y, lw=0.5, alpha=0.3, color=colour)
        window = max(1, len(y) // 50)
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        axis.plot(x[window - 1:], smooth, lw=1.6, color=colour, label=f"{label} ({len(y)} points)")
    values = np.concatenate([y for _, y in curves.values()])
    finite = values[np.isfinite(values)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > LOG_RANGE:
        axis.set_yscale("log")
    axis.set_xlabel("t (bin centre)" if overlay.by_t else "step")
    axis.set_ylabel(overlay.ylabel)
    axis.set_title(overlay.title, fontsize=10)
    legend(axis, fontsize=8)
    figure.tight_layout()
    return figure


def _curve(overlay: Overlay, table: "pd.DataFrame") -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y) of one run: steps and values, or bin centres and the last chunk's means; None where not logged."""
    if overlay.by_t:
        rows = table[table["tag"].str.startswith(overlay.tag)]
        if rows.empty:
            return None
        last = rows[rows["step"] == rows["step"].max()]
        bins = sorted((float(m.group(1)), float(m.group(2)), value)
                      for tag, value in zip(last["tag"], last["value"]) if (m := BY_T.fullmatch(tag)))
        return np.array([(a + b) / 2 for a, b, _ in bins]), np.array([v for _, _, v in bins])
    rows = table[table["tag"] == overlay.tag].sort_values("step")
    if rows.empty:
        return None
    return rows["step"].to_numpy(dtype=float), rows["value"].to_numpy(dtype=float)

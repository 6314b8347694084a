"""The regression-baseline figure (`loss-at-baseline`): the loss over the steps against the loss of predicting the
noise's mean, beside the network's output variance across rows against the rule's line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.figures import legend, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CAPTION = ("The loss as reported against the loss of predicting the noise's mean 0 (1 per element; band: the rule's "
           "margin), and the network's output variance across the rows of each training call, per element (log "
           "scale), against the rule's line; shaded: the last quarter of the run, which the rule judges.")
MAX_POINTS = 20_000  # points drawn per line: a longer run is drawn on an even stride of its records


def baseline_figure(losses: list[tuple[int, float]], spread: list[tuple[int, float]],
                    evidence: dict[str, Any]) -> Figure:
    """`losses` and `spread` as (step, value) records; `evidence` is the `loss-at-baseline` finding's (the loss per
    element it judged, the rule's spread fraction and noise band, the judged steps)."""
    figure, (left, right) = new_figure(1, 2, figsize=(10, 3.8))
    per_element = evidence["loss_per_element"]
    baseline = round(evidence["loss"] / per_element)  # 1 for a loss averaged over elements, a row's elements summed
    band = evidence["noise_band"]
    steps, values = _thinned(losses)
    left.plot(steps, values, color="tab:gray", lw=0.8, label="loss")
    left.axhline(baseline, color="tab:red", ls="--", lw=1.2, label=f"predicting the mean 0: {baseline:g}")
    left.axhspan(baseline * (1 - band), baseline * (1 + band), color="tab:red", alpha=0.1,
                 label=f"within {band:.0%} of it")
    left.set_ylabel("training loss (as reported)" if baseline == 1 else "training loss (summed over a row)")
    left.set_title(f"Loss {evidence['loss']:.4g} ({per_element:.3g} per element) over the last quarter", fontsize=10)
    steps, values = _thinned(spread)
    right.plot(steps, np.clip(values, 1e-12, None), color="tab:blue", lw=0.8,
               label=f"output of `{evidence['model']}`")
    right.axhline(evidence["threshold_spread"] * per_element, color="tab:red", ls="--", lw=1.2,
                  label=f"{evidence['threshold_spread']:g} × the loss per element")
    right.axhline(1.0, color="tab:green", ls=":", lw=1.2, label="the noise's variance, 1")
    right.set_yscale("log")
    right.set_ylabel("output variance across rows (per element)")
    right.set_title(f"Output variance {evidence['output_spread']:.3g} over the last quarter", fontsize=10)
    for axis in (left, right):
        axis.axvspan(evidence["since_step"], evidence["last_step"], color="tab:orange", alpha=0.12)
        axis.set_xlabel("step")
        legend(axis, fontsize=8)
    figure.tight_layout()
    return figure


def _thinned(records: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of (step, value) records, on an even stride of at most MAX_POINTS."""
    stride = max(1, len(records) // MAX_POINTS)
    picked = np.asarray(records[::stride], dtype=float).reshape(-1, 2)
    return picked[:, 0], picked[:, 1]

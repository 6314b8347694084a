"""Figures of the VAE decoder-output probe: the decoder's outputs against the data's values with the band a sigmoid
applied twice confines them to, and the binary cross-entropy's targets against [0, 1] beside the loss that fell
below 0."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.vae_output import MARGIN, SIGMOID_0, SIGMOID_1

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BINS = 40
SQUASHED_CAPTION = ("Share of values per bin: the decoder's outputs on the prior against the data's values; a "
                    "sigmoid applied twice confines the outputs to the red band [sigmoid(0), sigmoid(1)] = "
                    "[0.5, 0.731].")
BCE_CAPTION = ("Left: share of the binary cross-entropy's targets (the data) per bin, against the [0, 1] a Bernoulli "
               "target lies in (green). Right: the loss term over training; with targets in [0, 1] it never falls "
               "below 0 (dashed).")


def squashed_figure(samples: np.ndarray, data: np.ndarray) -> Figure:
    """Histograms (share of values per bin) of the decoder's outputs on the prior and of the data's values, with the
    band [sigmoid(0), sigmoid(1)]: outputs inside it only while the data lies outside is a sigmoid applied twice."""
    samples, data = _finite(samples), _finite(data)
    figure, axis = new_figure(figsize=(7.5, 3.6))
    bins = _bins(samples, data, low=0.0, high=1.0)
    axis.axvspan(SIGMOID_0, SIGMOID_1, color="tab:red", alpha=0.15,
                 label=f"sigmoid applied twice: [{SIGMOID_0:g}, {SIGMOID_1:.3f}]")
    _histogram(axis, data, bins, "0.45", "data values")
    _histogram(axis, samples, bins, "tab:blue", "decoder outputs on the prior (samples)")
    outside = float(np.mean((data < SIGMOID_0) | (data > SIGMOID_1))) if data.size else 0.0
    axis.set_xlabel("value")
    axis.set_ylabel("share of values")
    axis.set_title(f"samples in [{_low(samples)}, {_high(samples)}]; {outside:.0%} of the data values outside the "
                   "band", fontsize=9)
    legend(axis, fontsize=8)
    figure.tight_layout()
    return figure


def bce_figure(data: np.ndarray, steps: np.ndarray, loss: np.ndarray, term: str,
               lowest: tuple[int, float]) -> Figure:
    """Left: the targets' histogram against [0, 1]. Right: the loss term (`term`, "loss" or "recon") at the kept
    steps and its lowest value (step, value) against 0, the floor of a binary cross-entropy whose targets lie in
    [0, 1]."""
    data = _finite(data)
    figure, (values, curve) = new_figure(1, 2, figsize=(11, 3.6))
    values.axvspan(0.0, 1.0, color="tab:green", alpha=0.15, label="valid targets: [0, 1]")
    _histogram(values, data, _bins(data, low=0.0, high=1.0), "tab:blue", "targets (data values)")
    outside = float(np.mean((data < -MARGIN) | (data > 1 + MARGIN))) if data.size else 0.0
    values.set_xlabel("value")
    values.set_ylabel("share of values")
    values.set_title(f"targets in [{_low(data)}, {_high(data)}]; {outside:.0%} outside [0, 1]", fontsize=9)
    legend(values, fontsize=8)
    curve.plot(steps, loss, color="tab:blue", linewidth=1, label=term)
    curve.plot([lowest[0]], [lowest[1]], "v", color="tab:red", label=f"lowest: {lowest[1]:.4g} at step {lowest[0]}")
    curve.axhline(0.0, color="black", linestyle="--", linewidth=1, label="floor with targets in [0, 1]")
    curve.set_xlabel("step")
    curve.set_ylabel(f"{term} (as reported)")
    curve.set_title(f"{'reconstruction term' if term == 'recon' else 'loss'} over training", fontsize=9)
    legend(curve, fontsize=8)
    figure.tight_layout()
    return figure


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return values[np.isfinite(values)]


def _bins(*groups: np.ndarray, low: float, high: float) -> np.ndarray:
    """BINS equal bins over the values of every group and [low, high]."""
    seen = [group for group in groups if group.size]
    lowest = min([low] + [float(group.min()) for group in seen])
    highest = max([high] + [float(group.max()) for group in seen])
    return np.linspace(lowest, highest, BINS + 1)


def _histogram(axis: Axes, values: np.ndarray, bins: np.ndarray, color: str, label: str) -> None:
    if values.size:
        axis.hist(values, bins=bins, weights=np.full(values.size, 1 / values.size), color=color, alpha=0.6,
                  label=label)


def _low(values: np.ndarray) -> str:
    return f"{values.min():.3g}" if values.size else "-"


def _high(values: np.ndarray) -> str:
    return f"{values.max():.3g}" if values.size else "-"

"""Figures of the autoregressive probe: the loss by position against the data's entropy, and the causal check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.autoregressive import NetworkCheck
from gendiag.rules.autoregressive import target_offset
from gendiag.rules.thresholds import AR_LEAK_TOLERANCE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FLOOR = 1e-12  # changes of exactly 0 drawn on the log axis here
LOSS_CAPTION = ("Mean loss at each position (nats), early and latest steps, against the entropy of the value alone "
                "(the loss without context) and the data's entropy where given (the floor no causal model passes).")
CAUSAL_CAPTION = ("How far the output predicting position p moves when the inputs from p on, or only those after p, "
                  "change (a share of the output's spread, log scale); a causal network stays at 0 (drawn at 1e-12).")


def loss_by_position(recent: np.ndarray, early: np.ndarray | None, marginal: np.ndarray | None,
                     entropy: np.ndarray | None) -> Figure:
    """The mean loss at each position (first chunk of steps and latest), the entropy of each position's value alone
    (the loss of a model that ignores context: above it nothing was learned from the context) and the data's
    entropy where given (no causal model goes below it)."""
    figure, axis = new_figure(figsize=(8, 3.6))
    positions = np.arange(len(recent))
    if early is not None and early is not recent:
        axis.plot(positions, early, color="0.7", linewidth=1, label="loss, first steps")
    axis.plot(positions, recent, linewidth=1.2, label="loss, latest steps")
    if marginal is not None and len(marginal) == len(recent):
        axis.plot(positions, marginal, color="tab:orange", linewidth=1, label="entropy of the value alone")
    if entropy is not None:
        floor = np.broadcast_to(entropy, recent.shape)
        axis.plot(positions, floor, color="black", linestyle="--", linewidth=1, label="data entropy (floor)")
    axis.set_xlabel("position (raster order)")
    axis.set_ylabel("loss (nats per position)")
    axis.set_title("loss by position", fontsize=9)
    legend(axis, fontsize=8)
    figure.tight_layout()
    return figure


def causal_check(networks: list[NetworkCheck]) -> Figure:
    """For each network's latest check: how far the output predicting input p moves when the inputs from p on
    change (a causal network: not at all), and when only those after p change, against the tolerance."""
    figure, axis = new_figure(figsize=(7, 3.6))
    for check in networks:
        if not check.checks:
            continue
        offset, _ = target_offset(check)
        latest = check.checks[-1]
        scale = latest.scale or 1.0
        shown = [(row, p) for row, p in enumerate(latest.positions) if 0 <= p - offset < latest.own.shape[1]]
        xs = [p for _, p in shown]
        own = [max(latest.own[row, p - offset] / scale, FLOOR) for row, p in shown]
        later = [max(latest.later[row, p - offset] / scale, FLOOR) for row, p in shown]
        axis.plot(xs, own, marker="o", label=f"{check.model}: inputs from p on change")
        axis.plot(xs, later, marker="x", linestyle=":", label=f"{check.model}: inputs after p change")
    axis.axhline(AR_LEAK_TOLERANCE, color="black", linestyle="--", linewidth=1, label="tolerance")
    axis.set_yscale("log")
    axis.set_xlabel("input position p the output predicts")
    axis.set_ylabel("output change / output spread (ratio)")
    axis.set_title("causal check (0 for a causal network, drawn at 1e-12)", fontsize=9)
    legend(axis, fontsize=7)
    figure.tight_layout()
    return figure


def summary_text(networks: list[NetworkCheck], loss_steps: int, recent: np.ndarray | None,
                 marginal: np.ndarray | None) -> str:
    """The section's prose: what was checked on which network, and the loss against the per-position entropy."""
    lines = []
    for check in networks:
        offset, basis = target_offset(check)
        lines.append(f"- **{check.model}** ({check.kind} layout): {len(check.checks)} causal checks; targets at "
                     f"offset {offset} ({basis}).")
    if recent is not None:
        line = f"- **loss**: {float(np.mean(recent)):.4g} nats per position over the latest steps ({loss_steps} steps)"
        if marginal is not None and len(marginal) == len(recent):
            line += f"; the values alone have {float(np.mean(marginal)):.4g}"
        lines.append(line + ".")
    return "\n".join(lines) or "No autoregressive calls or per-position losses were recorded."

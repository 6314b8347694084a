"""Figures of the autoregressive probe: the loss by position against the data's entropy, the causal check, the values
the sampler feeds the network against the training levels, and how many samples differ."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gendiag.figures import TICKS, legend, new_figure
from gendiag.quantities.autoregressive import NetworkCheck
from gendiag.rules.autoregressive import target_offset
from gendiag.rules.thresholds import AR_DISTINCT_RATIO, AR_LEAK_TOLERANCE, AR_OFF_LEVEL_SHARE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FLOOR = 1e-12  # changes of exactly 0 drawn on the log axis here
LOSS_CAPTION = ("Mean loss at each position (nats), early and latest steps, against the entropy of the value alone "
                "(the loss without context) and the data's entropy where given (the floor no causal model passes).")
CAUSAL_CAPTION = ("How far the output predicting position p moves when the inputs from p on, or only those after p, "
                  "change (a share of the output's spread, log scale); a causal network stays at 0 (drawn at 1e-12).")
INPUTS_CAPTION = ("Left: share of values at each level the network saw in training (black) against the values the "
                  "sampler fed it in its last call of a run and the samples' values (share per bin). Right: the share "
                  "of those values off every training level, against the threshold.")
DISTINCT_CAPTION = ("Left: the share of distinct rows among the samples and among as many data rows, against the "
                    "threshold. Right: the share of the rows taken by each of the most frequent distinct rows.")
BINS = 50  # histogram bins of the values fed to the network


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


def sampler_values(levels: np.ndarray, level_counts: np.ndarray, sampler_inputs: np.ndarray, samples: np.ndarray,
                   runs_off_level: list[float], samples_off_level: float | None) -> Figure:
    """Left: the training levels (share of the training values at each) against histograms of the sampler's last
    inputs of a run and of the samples' values: a sampler that draws feeds only the levels. Right: the off-level share
    of each judged sampling run's last inputs and of the samples against AR_OFF_LEVEL_SHARE (a drawing sampler: 0, or
    the one undrawn position of the last call)."""
    from matplotlib.ticker import MaxNLocator

    figure, (values, shares) = new_figure(1, 2, figsize=(11, 3.6))
    values.vlines(levels, 0, level_counts / max(float(level_counts.sum()), 1.0), color="black", linewidth=2,
                  label="training inputs (share at each level)")
    groups = [(sampler_inputs, "tab:orange", "sampler's last inputs of a run"), (samples, "tab:blue", "samples")]
    shown = [group for group, _, _ in groups if group.size]
    low = min([float(levels.min())] + [float(v.min()) for v in shown])
    high = max([float(levels.max())] + [float(v.max()) for v in shown])
    bins = np.linspace(low, high, BINS + 1) if high > low else BINS
    for group, color, label in groups:
        if group.size:
            values.hist(group, bins=bins, weights=np.full(group.size, 1 / group.size), color=color, alpha=0.5,
                        label=label)
    values.set_xlabel("value")
    values.set_ylabel("share of values")
    values.set_title(f"values fed to the network ({len(levels)} training levels)", fontsize=9)
    legend(values, fontsize=7)
    if runs_off_level:
        shares.plot(np.arange(1, len(runs_off_level) + 1), runs_off_level, "o", color="tab:orange",
                    label="sampler's last inputs, each run")
    if samples_off_level is not None:
        shares.axhline(samples_off_level, color="tab:blue", linewidth=1.5, label=f"samples: {samples_off_level:.1%}")
    shares.axhline(AR_OFF_LEVEL_SHARE, color="tab:red", linestyle="--", linewidth=1,
                   label=f"threshold {AR_OFF_LEVEL_SHARE:.0%} (a drawing sampler: 0)")
    shares.set_ylim(-0.05, 1.05)
    shares.xaxis.set_major_locator(MaxNLocator(TICKS, integer=True))
    shares.set_xlabel("sampling run")
    shares.set_ylabel("share of values off every training level")
    shares.set_title("values off the training levels", fontsize=9)
    legend(shares, fontsize=7)
    figure.tight_layout()
    return figure


def distinct_samples(samples: int, distinct: int, data_rows: int, data_distinct: int, samples_top: np.ndarray,
                     data_top: np.ndarray) -> Figure:
    """Left: the share of distinct rows among `samples` samples and among `data_rows` data rows, with the line below
    which the samples are judged too alike (AR_DISTINCT_RATIO of the data's share). Right: the share of the rows
    taken by each of the most frequent distinct rows (`samples_top`, `data_top`, largest first)."""
    from matplotlib.ticker import MaxNLocator

    figure, (bars, top) = new_figure(1, 2, figsize=(11, 3.6))
    data_share = data_distinct / max(data_rows, 1)
    bars.bar([0, 1], [distinct / max(samples, 1), data_share], color=["tab:blue", "0.6"], width=0.6)
    bars.set_xticks([0, 1], [f"samples\n{distinct} of {samples}", f"data\n{data_distinct} of {data_rows}"])
    bars.axhline(AR_DISTINCT_RATIO * data_share, color="tab:red", linestyle="--", linewidth=1,
                 label=f"threshold: {AR_DISTINCT_RATIO:g} × the data's share")
    bars.set_ylim(0, 1.05)
    bars.set_ylabel("share of distinct rows")
    bars.set_title("distinct samples against distinct data rows", fontsize=9)
    legend(bars, fontsize=7)
    width = 0.4
    top.bar(np.arange(1, len(samples_top) + 1) - width / 2, samples_top, width=width, color="tab:blue",
            label="samples")
    top.bar(np.arange(1, len(data_top) + 1) + width / 2, data_top, width=width, color="0.6", label="data")
    top.set_ylim(0, 1.05)
    top.xaxis.set_major_locator(MaxNLocator(TICKS, integer=True))
    top.set_xlabel("distinct row, most frequent first")
    top.set_ylabel("share of the rows")
    top.set_title("how often the most frequent rows repeat", fontsize=9)
    legend(top, fontsize=7)
    figure.tight_layout()
    return figure

"""The diffusion sampler's figure: how its last steps fit the output read as noise and as x0, what the network
returns at the two ends of the schedule in training, and the last step's fit a·x0̂ + b·ε̂ against a = 1, b = 0."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.diffusion_sampler import CLEAN_ABAR
from gendiag.rules.thresholds import SAMPLER_FIT, SAMPLER_LAST_STEP, SAMPLER_TRAINED_NEAR

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CAPTION = ("Left: relative error of each of the sampling chain's last steps against the DDPM/DDIM step predicted with "
           "the output read as noise and as x0 (a reading fits below the dashed line). Middle: how far the network's "
           "output lies from its input in training at the two ends of the schedule (an x0 predictor returns about its "
           "input at the clean end, a noise predictor at the noisy end). Right: the samples fitted as a·x0̂ + b·ε̂ of "
           "the last call, against a healthy last step's a = 1, b = 0 (shaded: the tolerance).")

FLOOR = 1e-6  # errors drawn no lower than this on the log scale (a step fitted to float rounding)
NAMES = {"eps": "noise", "x0": "x0"}


def sampler_readings(steps: list[dict[str, Any]], trained: dict[str, Any] | None, last: dict[str, Any] | None,
                     reading: str | None) -> Figure:
    """Three panels from `step_readings`, `trained_reading`, `last_step_fit` and the chain's `reading` (plain
    numbers): the steps' errors under both readings with the fit threshold, the training-end distances with the
    "returns about its input" threshold, the last step's a and b with their expected values."""
    figure, (errors, ends, fit) = new_figure(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [3, 2, 2]})
    _step_errors(errors, steps, reading)
    _training_ends(ends, trained)
    _last_step(fit, last)
    figure.tight_layout()
    return figure


def _step_errors(axis: Any, steps: list[dict[str, Any]], reading: str | None) -> None:
    where = np.arange(len(steps))
    for key, colour, marker in (("eps", "tab:blue", "o"), ("x0", "tab:orange", "s")):
        values = np.maximum([step[f"error_{key}"] for step in steps], FLOOR)
        axis.plot(where, values, marker=marker, color=colour, label=f"output read as {NAMES[key]}")
    axis.axhline(SAMPLER_FIT, color="black", linestyle="--", linewidth=1, label=f"fits (≤ {SAMPLER_FIT:g})")
    axis.set_yscale("log")
    axis.set_xticks(where, [f"{step['t']:g}→{step['t_next']:g}" for step in steps])
    axis.set_xlabel("sampling step (network time t → next t)")
    axis.set_ylabel("error vs the predicted next state (relative RMS)")
    read = "neither reading" if reading is None else f"the output as {NAMES[reading]}"
    axis.set_title(f"the sampler's last steps read {read}", fontsize=10)
    legend(axis, fontsize=8)


def _training_ends(axis: Any, trained: dict[str, Any] | None) -> None:
    if trained is None:
        axis.set_title("what the network was trained on", fontsize=10)
        axis.text(0.5, 0.5, "no training rows seen\nat both ends of the schedule", ha="center", va="center",
                  transform=axis.transAxes)
        axis.set_axis_off()
        return
    names = [f"ᾱ_t ≥ {CLEAN_ABAR:g}\n({trained['rows_clean']} rows)",
             f"ᾱ_t ≤ {1 - CLEAN_ABAR:.2g}\n({trained['rows_noisy']} rows)"]
    distances = [trained["distance_clean"], trained["distance_noisy"]]
    axis.bar(np.arange(2), distances, width=0.6, color=["tab:orange", "tab:blue"])
    axis.set_xticks(np.arange(2), names)
    axis.axhline(SAMPLER_TRAINED_NEAR, color="black", linestyle="--", linewidth=1,
                 label=f"returns about its input (< {SAMPLER_TRAINED_NEAR:g})")
    axis.set_ylim(0, 1.35 * max(*distances, SAMPLER_TRAINED_NEAR))  # room for the legend above the bars
    axis.set_ylabel("output's distance from its input (relative RMS)")
    told = "not told" if trained["reading"] is None else NAMES[trained["reading"]]
    axis.set_title(f"what the network was trained on: {told}", fontsize=10)
    legend(axis, fontsize=8)


def _last_step(axis: Any, last: dict[str, Any] | None) -> None:
    if last is None:
        axis.set_title("the last step", fontsize=10)
        axis.text(0.5, 0.5, "no samples observed\nafter the chain", ha="center", va="center", transform=axis.transAxes)
        axis.set_axis_off()
        return
    where = np.arange(2)
    expected = np.array([1.0, 0.0])
    axis.bar(where, [last["a"], last["b"]], width=0.5, color=["tab:green", "tab:red"], label="fitted")
    for x, value in zip(where, expected):
        axis.fill_between([x - 0.4, x + 0.4], value - SAMPLER_LAST_STEP, value + SAMPLER_LAST_STEP, color="0.85",
                          zorder=0, label=f"tolerance (± {SAMPLER_LAST_STEP:g})" if x == 0 else None)
    axis.scatter(where, expected, marker="_", s=900, color="black", zorder=3, label="healthy last step")
    axis.set_xticks(where, ["a\n(on the x0 estimate)", "b\n(on the noise estimate)"])
    low = min(last["a"], last["b"], -SAMPLER_LAST_STEP)
    high = max(last["a"], last["b"], 1 + SAMPLER_LAST_STEP)
    axis.set_ylim(low - 0.1 * (high - low), high + 0.6 * (high - low))  # room for the legend above the bars
    axis.set_ylabel("coefficient")
    axis.set_title(f"last step from t = {last['t']:g} (fit residual {last['residual']:.2g}):\n"
                   "samples = a·(x0 estimate) + b·(noise estimate)", fontsize=9)
    legend(axis, fontsize=7, loc="upper center")

"""The conditioning figures: samples coloured by the class they were asked for beside the data coloured by its label,
with each class's agreement against the thresholds; and how often each condition, the null one included, was seen
in training against in sampling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.conditioning import Agreement
from gendiag.rules.conditioning import labels_at_chance
from gendiag.rules.thresholds import (CONDITIONING_CRITICAL_SCORE, CONDITIONING_LABELS_AT_CHANCE,
                                      CONDITIONING_WARNING_SCORE, NULL_TRAIN_SHARE)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

AGREEMENT_CAPTION = ("The data coloured by its label and the samples coloured by the class they were asked for, on one "
                     "plane (the data's first two principal axes where it is wider than 2-D); right, the share of "
                     "each class's samples that land in it, against chance, the data's own share and the levels below "
                     "which the samples count as ignoring their condition.")
NULL_CAPTION = ("Share of the recorded rows of the network that carried each condition, in training and in guided "
                "sampling; the null condition (hatched) must be trained on more than the dashed share.")
LEGEND_CLASSES = 10  # classes named in the scatter legends; more are told by colour only
TICKED_KEYS = 30  # conditions named under the bars; with more only the null one is


def agreement_figure(agreement: Agreement, data_xy: np.ndarray, data_labels: np.ndarray, samples_xy: np.ndarray,
                     sample_labels: np.ndarray, axis_labels: tuple[str, str]) -> Figure:
    """Data (N, 2) by label and samples (M, 2) by the class asked for, on the same axes and colours, and the
    agreement per class asked for against chance, the data's rate and the warning and critical levels."""
    figure, (data_axis, samples_axis, bars) = new_figure(1, 3, figsize=(15, 4.6))
    classes = sorted(set(data_labels.tolist()) | set(sample_labels.tolist()))
    colours = _colours(len(classes))
    both = np.concatenate([data_xy, samples_xy])
    both = both[np.isfinite(both).all(1)]  # a diverged sample is not drawn, nor let to set the limits
    low, high = both.min(0), both.max(0)
    pad = np.maximum(high - low, 1e-6) * 0.05
    for axis, xy, labels, title in (
            (data_axis, data_xy, data_labels, f"data by its label ({agreement.data_rate:.0%} of rows land in it)"),
            (samples_axis, samples_xy, sample_labels,
             f"samples by the class asked for ({agreement.sample_rate:.0%} land in it)")):
        for index, label in enumerate(classes):
            mine = labels == label
            if mine.any():
                axis.scatter(xy[mine, 0], xy[mine, 1], s=5, alpha=0.6, color=colours[index],
                             label=str(label) if len(classes) <= LEGEND_CLASSES else None)
        axis.set_xlim(low[0] - pad[0], high[0] + pad[0])
        axis.set_ylim(low[1] - pad[1], high[1] + pad[1])
        axis.set_xlabel(axis_labels[0])
        axis.set_ylabel(axis_labels[1])
        axis.set_title(title, fontsize=10)
        legend(axis, fontsize=7, markerscale=2, title="class", title_fontsize=7)
    _per_class(bars, agreement, classes, colours)
    figure.tight_layout()
    return figure


def _per_class(axis: Any, agreement: Agreement, classes: list[int], colours: list[Any]) -> None:
    """Bars of each asked class's agreement, with chance, the data's rate and the judged levels as lines."""
    asked = sorted(agreement.per_class)
    axis.bar(np.arange(len(asked)), [agreement.per_class[label]["rate"] for label in asked],
             color=[colours[classes.index(label)] for label in asked])
    axis.set_xticks(np.arange(len(asked)), [str(label) for label in asked] if len(asked) <= 20 else [""] * len(asked))
    axis.axhline(agreement.chance, color="0.4", linestyle=":", linewidth=1, label=f"chance ({agreement.chance:.0%})")
    axis.axhline(agreement.data_rate, color="tab:green", linewidth=1.5,
                 label=f"the data's own rows ({agreement.data_rate:.0%})")
    score = agreement.score
    if labels_at_chance(agreement) or score is None:
        line = agreement.chance + CONDITIONING_LABELS_AT_CHANCE
        axis.axhline(line, color="tab:red", linestyle="--", linewidth=1,
                     label="the data's own rows below this:\nlabels do not tell rows apart")
        headline = (f"the data's labels at chance:\nits rows {agreement.data_rate:.0%} in their class, chance "
                    f"{agreement.chance:.0%}, judged below {line:.0%}")
    else:
        room = agreement.data_rate - agreement.chance
        for level, colour, name in ((CONDITIONING_WARNING_SCORE, "tab:orange", "warning"),
                                    (CONDITIONING_CRITICAL_SCORE, "tab:red", "critical")):
            axis.axhline(agreement.chance + level * room, color=colour, linestyle="--", linewidth=1,
                         label=f"{name} below (score {level:g})")
        headline = (f"score {score:.2f} (1: as the data, 0: chance;\nwarning < {CONDITIONING_WARNING_SCORE:g}, "
                    f"critical < {CONDITIONING_CRITICAL_SCORE:g})")
    axis.set_ylim(0, 1.4)  # room for the legend above a rate of 1
    axis.set_yticks([0, 0.25, 0.5, 0.75, 1])
    axis.set_xlabel("class asked for")
    axis.set_ylabel(f"share of its samples landing in it ({agreement.method})")
    axis.set_title(f"{agreement.samples} samples; {headline}", fontsize=9)
    legend(axis, fontsize=7, loc="upper right")


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "viridis"]
    if count <= 20:
        return [palette(index) for index in range(count)]
    return [palette(index / max(count - 1, 1)) for index in range(count)]


def null_label_figure(model: str, train: dict[str, int], sampling: dict[str, int], null: str) -> Figure:
    """Share of the recorded training and sampling rows of `model` per condition (keys as shown), the `null` one
    marked, with the least training share the rule accepts for it."""
    keys = sorted(train.keys() | sampling.keys() | {null}, key=lambda key: _order(key, null))
    trained, sampled = sum(train.values()) or 1, sum(sampling.values()) or 1
    where = np.arange(len(keys))
    figure, axis = new_figure(figsize=(min(max(6.0, 0.6 * len(keys) + 3), 16.0), 4.2))
    width = 0.4
    for offset, counts, total, colour, name in ((-width / 2, train, trained, "tab:blue", "training"),
                                                (width / 2, sampling, sampled, "tab:orange", "sampling")):
        shares = [counts.get(key, 0) / total for key in keys]
        bars = axis.bar(where + offset, shares, width=width, color=colour,
                        label=f"{name} ({sum(counts.values())} rows)")
        bars[keys.index(null)].set_hatch("//")
    axis.axhline(NULL_TRAIN_SHARE, color="tab:red", linestyle="--", linewidth=1,
                 label=f"least training share of the null condition ({NULL_TRAIN_SHARE:.1%})")
    in_training, in_sampling = train.get(null, 0), sampling.get(null, 0)
    axis.annotate(f"{in_training} rows", (keys.index(null) - width / 2, in_training / trained), ha="center",
                  va="bottom", fontsize=8, color="tab:red", xytext=(0, 3), textcoords="offset points")
    shown = where if len(keys) <= TICKED_KEYS else [keys.index(null)]
    axis.set_xticks(shown, [f"{keys[i]}\n(null)" if keys[i] == null else keys[i] for i in shown])
    axis.set_xlabel("condition")
    axis.set_ylabel("share of the recorded rows")
    axis.set_title(f"network '{model}': null condition {null} on {in_training} training rows, "
                   f"{in_sampling} sampling rows", fontsize=10)
    legend(axis, fontsize=8)
    figure.tight_layout()
    return figure


def _order(key: str, null: str) -> tuple[bool, bool, int, str]:
    """Class labels in numeric order, then other keys, the null condition last."""
    number = key.lstrip("-").isdigit()
    return key == null, not number, int(key) if number else 0, key

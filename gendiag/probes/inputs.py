"""Training versus sampling inputs: is the network fed, at each t, in training what it meets when sampling?

Per bin of t, the energy distance between the inputs recorded in training and in sampling, divided by the energy
distance between the data and the source (from observed batches): 0 means "the same distribution", 1 means "as
far apart as data is from noise". A bin counts as a mismatch when that ratio is large and the permutation test is
significant; it is a warning only where the gap is also material on its own scale (the energy coefficient), since a
data set that lies close to its source, such as a unit-scale swiss roll against N(0, I), turns a small gap into a
large ratio: such a gap is reported as info. Also where each sits on the line from the source mean to the data mean (0 at
the source, 1 at the data). And whether the training inputs change with t at all: the lowest and the highest
bin of t, on the same scale (about 1 for any path from source to data).

Before the bins, the time scales: a sampler whose largest t is over 5 times training's, or under a fifth of it
(`gendiag.checks.time_scale`: `timesteps / T` in training, the scheduler's integer steps in sampling), is the
finding on its own, naming both scales, since bins of t that mix two scales compare nothing.

The flagship bug feeds the network the source batch x0 at every t: the training inputs do not change with t, and
where the sampler does walk toward the data, the large-t bins light up too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from gendiag.checks.time_scale import SCALE_RATIO as TIME_SCALE_RATIO
from gendiag.checks.time_scale import TimeScaleGap, time_scale_gap
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding, advice
from gendiag.flow.projection import principal_plane
from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.metrics.energy import energy_coefficient, energy_distance, energy_test
from gendiag.probes import register
from gendiag.probes.base import ForwardCall, Probe, ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROWS_PER_TRAIN_CALL = 8
BINS = 5
MIN_ROWS_PER_BIN = 12
PERMUTATIONS = 200
SIGNIFICANCE = 0.01
MAX_ROWS_PER_BIN = 256
KEPT_INPUT_ROWS = 2048  # 2-D input rows kept per network and mode: ~400 a bin, over the MAX_ROWS_PER_BIN compared
WARNING_RATIO, CRITICAL_RATIO = 0.4, 0.7
MIN_COEFFICIENT = 0.02
STATIC_RATIO = 0.25
ADVICE = {  # `train-sample-input-mismatch`, by task: flow's x0 is the noise, diffusion's the data
    "flow": ("Feed the network the interpolant x_t = t*x1 + (1 - t)*x0 at the t you draw (not the source batch x0 or "
             "the data batch), with x0 drawn the way the sampler draws its start; check that the sampler integrates "
             "the same t direction the training uses."),
    "diffusion": ("Feed the network x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε (x0 the data batch, ε fresh N(0, I) noise) at "
                  "the t you draw, with t on the same scale the sampler passes (integer step or step / T) and ᾱ_t "
                  "from the same schedule; check that ᾱ_T is near 0, so that x_T looks like the N(0, I) noise the "
                  "sampler starts from."),
    "generic": ("Feed the network in training the inputs the sampler gives it: at each t, the data noised the way "
                "the sampler's path has it at that t, with the same noise and the same t convention (direction and "
                "scale) as the sampler."),
}


@register
class InputsProbe(Probe):
    """Compares, per bin of t, what a watched network is fed in training with what it is fed in sampling."""

    name = "inputs"
    tasks = ("flow", "diffusion")
    wants_forward = True

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self._train: dict[str, Reservoir] = {}
        self._sampling: dict[str, Reservoir] = {}
        self._data: Reservoir | None = None
        self._source: Reservoir | None = None
        self._table: pd.DataFrame | None = None
        self._summary: dict[str, Any] = {}
        self._figure: str | None = None
        self._time_gap: tuple[str, TimeScaleGap] | None = None  # the network, and how its t scales differ
        self._generator = torch.Generator().manual_seed(11)

    def on_forward(self, ctx: Any, call: ForwardCall) -> None:
        """Keep a few rows of each training call (the Monitor already hands over only every `every`-th one, its rows
        in random order, so the first few are a uniform sample) and every row of the sampling calls, with their
        times."""
        if call.x is None or call.t is None or call.x.dim() < 2:
            return
        rows = call.x.shape[0] if call.mode == "sampling" else min(call.x.shape[0], ROWS_PER_TRAIN_CALL)
        times = call.t.reshape(-1)
        if times.numel() == 1:
            times = times.expand(rows)
        elif times.numel() < rows:
            return
        store = self._train if call.mode == "train" else self._sampling
        if call.model not in store:
            seed = (17 if call.mode == "train" else 29) + len(store)
            store[call.model] = Reservoir(capacity_for(int(call.x[0].numel()), KEPT_INPUT_ROWS, 1024), seed=seed)
        store[call.model].add(call.x[:rows], times[:rows])

    def on_data(self, ctx: Any, batch: torch.Tensor, role: str) -> None:
        dim = int(batch[0].numel())
        if role == "data":
            if self._data is None:
                self._data = Reservoir(capacity_for(dim, 2000, 512), seed=3)
            self._data.add(batch)
        else:
            if self._source is None:
                self._source = Reservoir(capacity_for(dim, 2000, 512), seed=5)
            self._source.add(batch)

    def finish(self, ctx: Any) -> ProbeSection | None:
        names = [n for n in self._train if n in self._sampling]
        if not names:
            return ProbeSection(title="Training versus sampling inputs", text=(
                "No comparison: it needs forward calls of a watched network with a time argument both in training "
                "and inside `with mon.sampling():`."))
        name = names[0]
        train, sampling = self._train[name], self._sampling[name]
        gap = time_scale_gap(train.times, sampling.times, ctx.facts.get("schedule"))
        self._time_gap = None if gap is None else (name, gap)
        reference = self._reference_distance(train.rows.shape[1])
        table = _per_bin(train, sampling, reference, self._data, self._source, self._generator)
        self._table = table
        text = [f"Network `{name}`: {len(train)} training input rows (of {train.seen} recorded) and {len(sampling)} "
                f"sampling input rows, compared in {len(table)} bins of t by the energy distance (`p_value`: "
                f"permutation test, {PERMUTATIONS} relabellings)."]
        if gap is not None:
            text.append(gap.describe() + " The bins of t below mix the two scales.")
        if not reference:
            text.append("No data and source batches of the network's input size were observed "
                        "(`mon.observe_data(..., role=\"data\"/\"source\")`), so distances stay unscaled and no "
                        "finding is made.")
        else:
            text.append(f"Scale: the energy distance between the observed data and source batches is {reference:.4g}; "
                        "`ratio` is each bin's distance divided by it (0: same distribution; 1: as far apart as data "
                        "from noise). `progress_*` places each set's mean on the line from the source mean (0) to the "
                        "data mean (1).")
            self._summary = {"model": name, "reference_distance": reference,
                             "ratios": table["ratio"].round(4).tolist(),
                             "bins": [[round(float(a), 4), round(float(b), 4)]
                                      for a, b in zip(table["t_low"], table["t_high"])],
                             "t_change": _t_change(train, table, reference, self._generator)}
            change = self._summary["t_change"]
            if change is not None:
                text.append(f"Training inputs of the lowest and the highest bin of t differ by {change['ratio']:.3g} "
                            "of the data–source distance (a path from source to data changes them by about 1).")
                ctx.log_scalar("inputs/train_change_over_t", change["ratio"])
            for _, row in table.dropna(subset=["ratio"]).iterrows():
                ctx.log_scalar(f"inputs/mismatch_t{row['t_low']:.2f}-{row['t_high']:.2f}", float(row["ratio"]))
            ctx.add_chart("inputs", "training vs sampling input mismatch by t", [r"inputs/mismatch_.*"])
        self._figure = ctx.save_figure(_figure(table, train, sampling, self._data, self._source, reference),
                                       "inputs_train_vs_sampling")
        return ProbeSection(title="Training versus sampling inputs", text=" ".join(text), figures=[self._figure],
                            table=table.round(4).set_index("bin"))

    def findings(self, ctx: Any) -> list[Finding]:
        if self._time_gap is not None:
            return [_time_scale_finding(*self._time_gap, ctx.task, self._figure)]
        if not self._summary:
            return []
        summary, table = self._summary, self._table
        scored = table.dropna(subset=["ratio"])
        bad = scored[(scored["ratio"] >= WARNING_RATIO) & (scored["p_value"] < SIGNIFICANCE)]
        material = bad[bad["coefficient"] >= MIN_COEFFICIENT]
        change = summary["t_change"]
        static = change is not None and change["ratio"] < STATIC_RATIO
        if bad.empty and not static:
            return []
        worst = (bad if not bad.empty else scored).sort_values("ratio").iloc[-1]
        low, high = (float(worst["t_low"]), float(worst["t_high"])) if not bad.empty else change["high_bin"]
        model = summary["model"]
        parts = []
        if static:
            parts.append(
                f"The training inputs of `{model}` hardly change with t: those with t in "
                f"[{change['low_bin'][0]:.2f}, {change['low_bin'][1]:.2f}] and in [{change['high_bin'][0]:.2f}, "
                f"{change['high_bin'][1]:.2f}] differ by only {change['ratio']:.2g} of the data–source distance, "
                "where any path from the source to the data changes them by about 1"
                + (f" (their mean sits at {change['progress_low']:.2f} and {change['progress_high']:.2f} on the line "
                   "from the source mean, 0, to the data mean, 1)" if change["progress_low"] is not None else "")
                + ". The network is trained on one fixed set of inputs labelled with every t, never on the points a "
                "sampler must pass through on its way to the data.")
        if not bad.empty:
            progress = ""
            if pd.notna(worst["progress_train"]):
                progress = (f" On the line from the source mean (0) to the data mean (1), training inputs there sit at "
                            f"{worst['progress_train']:.2f} and sampling inputs at {worst['progress_sampling']:.2f}.")
            parts.append(
                f"For t in [{low:.2f}, {high:.2f}] the inputs fed to `{model}` while sampling are {worst['ratio']:.2f} "
                f"times as far (energy distance) from its training inputs as the data is from the source.{progress} "
                f"{len(bad)} of {len(scored)} bins of t exceed {WARNING_RATIO} (permutation p < {SIGNIFICANCE}).")
            if material.empty and not static:
                parts.append(
                    f"The gap is small on the inputs' own scale, though: its energy coefficient is "
                    f"{worst['coefficient']:.3f} (below {MIN_COEFFICIENT}; 0 for equal distributions, 1 for disjoint "
                    "ones), and the ratio is large because the data lies close to the source. Worth a look only "
                    "if the samples are poor.")
        parts.append("A network is only right on inputs like those it was trained on.")
        evidence = {
            "worst_t_range": [round(low, 4), round(high, 4)],
            "worst_ratio": round(float(worst["ratio"]), 4),
            "worst_energy_distance": round(float(worst["energy"]), 4),
            "worst_p_value": round(float(worst["p_value"]), 4),
            "worst_coefficient": round(float(worst["coefficient"]), 4),
            "data_source_energy_distance": round(summary["reference_distance"], 4),
            "t_ranges_over_threshold": [[round(float(a), 3), round(float(b), 3)]
                                        for a, b in zip(bad["t_low"], bad["t_high"])],
            "ratio_by_bin": summary["ratios"],
            "bins": summary["bins"],
            "progress_train_by_bin": [_number(v) for v in table["progress_train"]],
            "progress_sampling_by_bin": [_number(v) for v in table["progress_sampling"]],
            "train_change_over_t": None if change is None else round(change["ratio"], 4),
            "threshold_warning": WARNING_RATIO, "threshold_critical": CRITICAL_RATIO,
            "threshold_train_change": STATIC_RATIO, "significance": SIGNIFICANCE,
            "threshold_coefficient": MIN_COEFFICIENT,
        }
        title = ("The network is trained on inputs that do not follow t" if static else
                 f"The network meets different inputs in sampling than in training (t in [{low:.2f}, {high:.2f}])")
        return [Finding(
            code="train-sample-input-mismatch",
            severity=("critical" if static or (not material.empty and worst["ratio"] >= CRITICAL_RATIO) else
                      "warning" if not material.empty else "info"),
            title=title, message=" ".join(parts), evidence=evidence,
            suggestion=advice(ADVICE, ctx.task),
            figure=self._figure,
        )]

    def state(self) -> dict[str, Any]:
        return self._summary

    def _reference_distance(self, dim: int) -> float | None:
        """Energy distance between observed data and source rows of the network's input size, if both exist."""
        if self._data is None or self._source is None or len(self._data) < 2 or len(self._source) < 2:
            return None
        data, source = self._data.rows, self._source.rows
        if data.shape[1] != dim or source.shape[1] != dim:
            return None
        distance = energy_distance(data[:MAX_ROWS_PER_BIN * 2], source[:MAX_ROWS_PER_BIN * 2])
        return distance if distance > 0 else None


def _time_scale_finding(model: str, gap: TimeScaleGap, task: str, figure: str | None) -> Finding:
    """Training and sampling feed t on different scales: every per-bin comparison would mix them, so this is the
    finding instead."""
    return Finding(
        code="train-sample-input-mismatch", severity="critical",
        title=f"The sampler passes `{model}` t on another scale than training ({gap.factor:.3g} times "
              f"{'larger' if gap.sampling_larger else 'smaller'})",
        message=(f"{gap.describe()} The network meets, in sampling, times it was never trained on, so its "
                 "prediction there is arbitrary whatever the inputs."),
        evidence={"train_t_max": round(gap.train_max, 6), "sampling_t_max": round(gap.sampling_max, 6),
                  "factor": round(gap.factor, 4), "schedule_steps": gap.schedule_steps,
                  "threshold_factor": TIME_SCALE_RATIO},
        suggestion=("Pass the network t on one scale in training and in sampling: the integer step the scheduler "
                    "uses (`scheduler.timesteps`, `torch.randint(0, T, ...)`) in both, or step / T in both. "
                    + advice(ADVICE, task)),
        figure=figure,
    )


def _per_bin(train: Reservoir, sampling: Reservoir, reference: float | None, data: Reservoir | None,
             source: Reservoir | None, generator: torch.Generator) -> pd.DataFrame:
    """One row per bin of t: rows seen, energy distance, ratio to the data-source distance, progress of the means."""
    t_train, t_sampling = train.times, sampling.times
    low = float(torch.cat([t_train, t_sampling]).min())
    high = float(torch.cat([t_train, t_sampling]).max())
    edges = torch.linspace(low, high if high > low else low + 1, BINS + 1)
    axis = _progress_axis(data, source, train.rows.shape[1])
    records = []
    for index in range(BINS):
        lo, hi = float(edges[index]), float(edges[index + 1])
        last = index == BINS - 1
        in_train = (t_train >= lo) & ((t_train <= hi) if last else (t_train < hi))
        in_sampling = (t_sampling >= lo) & ((t_sampling <= hi) if last else (t_sampling < hi))
        a, b = train.rows[in_train][:MAX_ROWS_PER_BIN], sampling.rows[in_sampling][:MAX_ROWS_PER_BIN]
        energy = p_value = ratio = coefficient = progress_a = progress_b = float("nan")
        if len(a) >= MIN_ROWS_PER_BIN and len(b) >= MIN_ROWS_PER_BIN:
            energy, p_value = energy_test(a, b, PERMUTATIONS, generator)
            ratio = energy / reference if reference else float("nan")
            coefficient = energy_coefficient(a, b, energy)
            if axis is not None:
                progress_a, progress_b = axis(a), axis(b)
        records.append({"bin": index, "t_low": lo, "t_high": hi, "rows_train": int(in_train.sum()),
                        "rows_sampling": int(in_sampling.sum()), "energy": energy, "p_value": p_value, "ratio": ratio,
                        "coefficient": coefficient,
                        "progress_train": progress_a, "progress_sampling": progress_b})
    return pd.DataFrame.from_records(records)


def _t_change(train: Reservoir, table: pd.DataFrame, reference: float,
              generator: torch.Generator) -> dict[str, Any] | None:
    """How much the training inputs of the lowest and the highest populated bin of t differ, over the
    data-source distance (about 1 for any path from source to data; about 0 when the inputs ignore t)."""
    filled = table[table["rows_train"] >= MIN_ROWS_PER_BIN]
    if len(filled) < 2:
        return None
    first, last = filled.iloc[0], filled.iloc[-1]
    rows = []
    for row in (first, last):
        inside = (train.times >= row["t_low"]) & (train.times <= row["t_high"])
        rows.append(train.rows[inside][:MAX_ROWS_PER_BIN])
    energy, p_value = energy_test(rows[0], rows[1], PERMUTATIONS, generator)
    return {"ratio": energy / reference, "energy": energy, "p_value": p_value,
            "low_bin": [float(first["t_low"]), float(first["t_high"])],
            "high_bin": [float(last["t_low"]), float(last["t_high"])],
            "progress_low": _number(first["progress_train"]), "progress_high": _number(last["progress_train"])}


def _progress_axis(data: Reservoir | None, source: Reservoir | None, dim: int) -> Any:
    """A function placing a set's mean on the source-to-data line, or None when the two means are too close
    (less than a quarter of the data's spread apart) for the position to mean anything."""
    if data is None or source is None or len(data) < 2 or len(source) < 2:
        return None
    if data.rows.shape[1] != dim or source.rows.shape[1] != dim:
        return None
    start, end = source.rows.double().mean(0), data.rows.double().mean(0)
    direction = end - start
    spread = float((data.rows.double() - end).pow(2).sum(1).mean().sqrt())
    length2 = float(direction.pow(2).sum())
    if length2 ** 0.5 < 0.25 * spread:
        return None
    return lambda rows: float((rows.double().mean(0) - start) @ direction / length2)


def _number(value: Any) -> float | None:
    return None if pd.isna(value) else round(float(value), 4)


def _figure(table: pd.DataFrame, train: Reservoir, sampling: Reservoir, data: Reservoir | None,
            source: Reservoir | None, reference: float | None) -> Figure:
    """Left: the mismatch per bin of t. Middle: where the inputs' means sit between source and data, per bin.
    Right: training and sampling inputs of the worst bin on a plane."""
    figure, axes = new_figure(1, 3, figsize=(15, 4))
    centers = (table["t_low"] + table["t_high"]) / 2
    width = float((table["t_high"] - table["t_low"]).iloc[0]) * 0.9
    if reference:
        axes[0].bar(centers, table["ratio"].fillna(0), width=width, color="tab:red", alpha=0.7)
        axes[0].axhline(WARNING_RATIO, color="orange", ls="--", lw=1, label=f"warning {WARNING_RATIO}")
        axes[0].axhline(CRITICAL_RATIO, color="red", ls="--", lw=1, label=f"critical {CRITICAL_RATIO}")
        axes[0].set_ylabel("energy distance / data–source distance")
        legend(axes[0], fontsize=8)
    else:
        axes[0].bar(centers, table["energy"].fillna(0), width=width, color="tab:red", alpha=0.7)
        axes[0].set_ylabel("energy distance (unscaled)")
    axes[0].set_xlabel("t")
    axes[0].set_title("training vs sampling inputs, per bin of t")
    if table["progress_train"].notna().any():
        axes[1].plot(centers, table["progress_train"], "o-", color="tab:blue", label="training inputs")
        axes[1].plot(centers, table["progress_sampling"], "o-", color="tab:orange", label="sampling inputs")
        axes[1].plot([0, 1], [0, 1], ls=":", color="0.5", label="linear path x_t")
        axes[1].set_ylabel("mean's position: source 0 → data 1")
        legend(axes[1], fontsize=8)
    else:
        axes[1].text(0.5, 0.5, "source and data means too close\nto place the inputs between them",
                     ha="center", va="center", transform=axes[1].transAxes)
    axes[1].set_xlabel("t")
    axes[1].set_title("inputs between source and data")
    scored = table.dropna(subset=["energy"])
    pick = scored.loc[scored["energy"].idxmax()] if not scored.empty else table.iloc[-1]
    lo, hi = float(pick["t_low"]), float(pick["t_high"])
    a = train.rows[(train.times >= lo) & (train.times <= hi)]
    b = sampling.rows[(sampling.times >= lo) & (sampling.times <= hi)]
    background = [r.rows for r in (data, source) if r is not None and len(r) and r.rows.shape[1] == a.shape[1]]
    fit_on = torch.cat(background + [a, b]) if background else torch.cat([a, b])
    if fit_on.shape[0] >= 2 and fit_on.shape[1] >= 2:
        plane = principal_plane(fit_on)
        for reservoir, colour, label in ((data, "0.75", "data"), (source, "tab:green", "source")):
            if reservoir is not None and len(reservoir) and reservoir.rows.shape[1] == a.shape[1]:
                xy = plane.project(reservoir.rows)
                axes[2].scatter(xy[:, 0], xy[:, 1], s=3, color=colour, alpha=0.3, label=label)
        for rows, colour, label in ((a, "tab:blue", "training inputs"), (b, "tab:orange", "sampling inputs")):
            if len(rows):
                xy = plane.project(rows)
                axes[2].scatter(xy[:, 0], xy[:, 1], s=8, color=colour, alpha=0.7, label=label)
        axes[2].set_xlabel(plane.axis_labels()[0])
        axes[2].set_ylabel(plane.axis_labels()[1])
        legend(axes[2], fontsize=8, markerscale=2)
    axes[2].set_title(f"inputs with t in [{lo:.2f}, {hi:.2f}]")
    figure.tight_layout()
    return figure

"""Where a training step's time goes: the share of each named phase (`with mon.phase("data"): ...`) in the wall
time between consecutive `Monitor.step` calls; what no phase covers is "other" (the Monitor, logging, code outside
the phases).

Per step the probe reads the clock once; the Monitor already puts each phase's seconds per step into the metrics
table (`time/<phase>`), which `finish` joins with the step intervals.

Finding:
- `data-bottleneck` (warning): phases named like data loading (the name holds "data" or "load") take at least half
  of the step time, so the accelerator waits for batches.
"""

from __future__ import annotations

import time
from array import array
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DATA_WORDS = ("data", "load")
BOTTLENECK_SHARE = 0.5
MIN_STEPS = 10
TB_POINTS = 500


@register
class TimingProbe(Probe):
    """Share of step time per phase; `data-bottleneck`."""

    name = "timing"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.last_call: float | None = None
        self.steps = array("q")
        self.intervals = array("d")
        self.summary: dict[str, Any] = {}
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("time", "milliseconds per step by phase", ["time/ms/.*"])

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        now = time.perf_counter()
        if self.last_call is not None and self.due(record.step):
            self.steps.append(record.step)
            self.intervals.append(now - self.last_call)
        self.last_call = now

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not self.steps:
            return None
        per_step = _per_step(ctx, self.steps, self.intervals)
        self.summary = _summarise(per_step)
        _log(ctx, per_step, self.summary)
        self.figure = ctx.save_figure(_figure(per_step, self.summary), "step_time")
        return ProbeSection(title="Step time by phase", text=_text(self.summary), figures=[self.figure],
                            table=pd.DataFrame({"ms per step": self.summary["ms_per_step"],
                                                "share": self.summary["shares"]}).rename_axis("phase"))

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not self.summary.get("bottleneck"):
            return []
        return [_bottleneck_finding(self.summary, self.figure)]

    def state(self) -> dict[str, Any]:
        return dict(self.summary)


def _per_step(ctx: ProbeContext, steps: array, intervals: array) -> pd.DataFrame:
    """Seconds per phase and the whole interval, one row per measured step; "other" is the untimed rest."""
    frame = ctx.table.frame()
    ours = frame["tag"].str.startswith(("time/ms/", "time/share/"))  # what this probe logs itself
    phases = frame[frame["tag"].str.startswith("time/") & ~ours]
    table = phases.assign(phase=phases["tag"].str.slice(5)).pivot_table(
        index="step", columns="phase", values="value", aggfunc="sum")
    total = pd.Series(np.frombuffer(intervals, dtype=np.float64), index=np.frombuffer(steps, dtype=np.int64))
    joined = table.reindex(total.index).fillna(0.0)
    joined["other"] = (total - joined.sum(axis=1)).clip(lower=0.0)
    joined["total"] = np.maximum(total, joined.drop(columns="other").sum(axis=1))
    return joined


def _summarise(per_step: pd.DataFrame) -> dict[str, Any]:
    phases = [c for c in per_step.columns if c != "total"]
    seconds = per_step[phases].sum()
    total = float(per_step["total"].sum())
    shares = (seconds / total if total > 0 else seconds * 0).to_dict()
    data_phases = [p for p in phases if any(word in p.lower() for word in DATA_WORDS)]
    data_share = float(sum(shares[p] for p in data_phases))
    return {
        "steps_measured": len(per_step), "ms_per_step_total": 1000 * total / len(per_step),
        "ms_per_step_median": float(1000 * per_step["total"].median()),
        "ms_per_step": {p: float(1000 * seconds[p] / len(per_step)) for p in phases},
        "shares": {p: float(v) for p, v in shares.items()}, "data_phases": data_phases, "data_share": data_share,
        "bottleneck": bool(len(per_step) >= MIN_STEPS and data_share >= BOTTLENECK_SHARE),
    }


def _log(ctx: ProbeContext, per_step: pd.DataFrame, summary: dict[str, Any]) -> None:
    """Milliseconds per step and phase to TensorBoard (at most TB_POINTS averaged points each), shares once."""
    groups = np.arange(len(per_step)) * TB_POINTS // len(per_step)
    averaged = per_step.groupby(groups).mean()
    last_steps = per_step.index.to_numpy()[np.r_[np.flatnonzero(np.diff(groups)), len(groups) - 1]]
    for phase in averaged.columns:
        for step, value in zip(last_steps, averaged[phase].to_numpy()):
            ctx.tb.scalar(f"time/ms/{phase}", 1000 * float(value), int(step))
    for phase, share in summary["shares"].items():
        ctx.log_scalar(f"time/share/{phase}", share, int(per_step.index[-1]))


def _bottleneck_finding(summary: dict[str, Any], figure: str | None) -> Finding:
    names = ", ".join(f"'{p}'" for p in summary["data_phases"])
    data_ms = sum(summary["ms_per_step"][p] for p in summary["data_phases"])
    return Finding(
        code="data-bottleneck", severity="warning",
        title="Preparing data takes most of the step time",
        message=(f"The {names} phase{'s' if len(summary['data_phases']) > 1 else ''} took {summary['data_share']:.0%} "
                 f"of the step time ({data_ms:.3g} of {summary['ms_per_step_total']:.3g} ms per step, over "
                 f"{summary['steps_measured']} steps): the model waits for its batches."),
        evidence={"data_share": summary["data_share"], "shares": summary["shares"],
                  "ms_per_step": summary["ms_per_step"], "ms_per_step_total": summary["ms_per_step_total"],
                  "steps_measured": summary["steps_measured"]},
        suggestion=("Prepare data ahead of the step: precompute or cache the data set, vectorise the data "
                    "generation, or use a DataLoader with num_workers > 0 and pin_memory; on a GPU, generate "
                    "batches on the device."),
        figure=figure,
    )


def _figure(per_step: pd.DataFrame, summary: dict[str, Any]) -> Figure:
    figure, axes = new_figure(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1, 2]})
    phases = list(summary["shares"])
    left = 0.0
    for phase in phases:
        share = summary["shares"][phase]
        axes[0].barh(0, share, left=left, label=f"{phase} {share:.0%}")
        left += share
    axes[0].set_xlim(0, 1)
    axes[0].set_yticks([])
    axes[0].set_xlabel("share of step time")
    legend(axes[0], fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    window = max(1, len(per_step) // 200)
    smooth = per_step[phases].rolling(window, min_periods=1).mean() * 1000
    axes[1].stackplot(smooth.index, *[smooth[p].to_numpy() for p in phases], labels=phases, alpha=0.8)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel(f"ms per step (mean of {window})")
    legend(axes[1], fontsize=8, loc="upper right")
    figure.tight_layout()
    return figure


def _text(summary: dict[str, Any]) -> str:
    parts = ", ".join(f"{p} {summary['shares'][p]:.0%} ({summary['ms_per_step'][p]:.3g} ms)" for p in summary["shares"])
    return (f"{summary['steps_measured']} steps measured, {summary['ms_per_step_total']:.3g} ms per step on average "
            f"(median {summary['ms_per_step_median']:.3g} ms). Share of the step time by phase: {parts}. \"other\" is "
            "time outside every named phase (the Monitor and its probes, logging, the rest of the loop).")

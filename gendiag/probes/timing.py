"""Where a training step's time goes: the share of each named phase (`with mon.phase("data"): ...`) in the wall
time between consecutive `Monitor.step` calls; what no phase covers is "other" (the Monitor, logging, code outside
the phases).

Per step the probe reads the clock once; the Monitor already logs each phase's seconds per step to every sink
(`time/<phase>`: TensorBoard and the metrics table), which are joined with the step intervals when findings or the section are asked for
(`gendiag.quantities.timing`); at the end the untimed rest of each step and the whole step are logged beside
them (`time/other`, `time/total`, seconds; rule `gendiag.rules.timing`, figure `gendiag.figures.timing`).

Finding:
- `data-bottleneck` (warning): phases named like data loading (the name holds "data" or "load") take at least half
  of the step time, so the accelerator waits for batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.context import ProbeContext
from gendiag.figures.timing import TIMING_CAPTION, timing_figure, timing_text
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection
from gendiag.quantities.timing import StepIntervals, is_data_phase, phase_seconds, summarise_timing
from gendiag.rules.timing import is_bottleneck, timing_findings

if TYPE_CHECKING:
    import pandas as pd

FIGURE = "step_time"


@register
class TimingProbe(Probe):
    """Share of step time per phase; `data-bottleneck`."""

    name = "timing"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.clock = StepIntervals()
        self.summary: dict[str, Any] = {}
        self.cached: tuple[int, pd.DataFrame, dict[str, Any]] | None = None  # (steps measured, per step, summary)
        self.data_timed = False  # whether a phase named like data loading was timed

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("time", "seconds per step by phase", [r"time/(?!share/).*"])

    def at_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        self.clock.tick(record.step, self.due(record.step))
        self.data_timed = self.data_timed or any(is_data_phase(name) for name in record.phases)

    def _measured(self, ctx: ProbeContext) -> tuple["pd.DataFrame", dict[str, Any]]:
        """Seconds per phase and step, and their summary with its verdict; computed once per measured step."""
        if self.cached is None or self.cached[0] != len(self.clock):
            per_step = phase_seconds(ctx.table.frame(), np.array(self.clock.steps, dtype=np.int64),
                                     np.array(self.clock.intervals, dtype=np.float64))
            summary = summarise_timing(per_step)
            self.cached = (len(self.clock), per_step, {**summary, "bottleneck": is_bottleneck(summary)})
        return self.cached[1], self.cached[2]

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not len(self.clock):
            return None
        import pandas as pd

        per_step, self.summary = self._measured(ctx)
        _log(ctx, per_step, self.summary)
        ctx.draw_figure(FIGURE, timing_figure, per_step, self.summary, caption=TIMING_CAPTION)
        return ProbeSection(title="Step time by phase", text=timing_text(self.summary),
                            figures=[f"figures/{FIGURE}.png"],
                            table=pd.DataFrame({"ms per step": self.summary["ms_per_step"],
                                                "share": self.summary["shares"]}).rename_axis("phase"))

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        # Its one finding needs a data phase; without one, the whole metrics table it reads (the costliest part of
        # a live check) is left alone.
        if not len(self.clock) or not self.data_timed:
            return []
        return timing_findings(self._measured(ctx)[1], f"figures/{FIGURE}.png")

    def state(self) -> dict[str, Any]:
        return dict(self.summary)


def _log(ctx: ProbeContext, per_step: "pd.DataFrame", summary: dict[str, Any]) -> None:
    """The untimed rest of each measured step and its whole interval, in seconds, beside the phases' own per-step
    tags (the Monitor logs those), and each phase's share of the run at its last step, to every sink."""
    steps = per_step.index.to_numpy()
    for column in ("other", "total"):
        for step, value in zip(steps, per_step[column].to_numpy()):
            ctx.log_scalar(f"time/{column}", float(value), int(step))
    for phase, share in summary["shares"].items():
        ctx.log_scalar(f"time/share/{phase}", share, int(steps[-1]))

"""Where a training step's time goes: the wall time of a step between `Monitor.step` calls (`StepIntervals`),
joined with the seconds per named phase the Monitor puts into the metrics table (`phase_seconds`), and the share
of each phase in the step time (`summarise_timing`)."""

from __future__ import annotations

import time
from array import array
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

DATA_WORDS = ("data", "load")  # a phase whose name holds one of these prepares data
TIMING_OWN = ("time/other", "time/total")  # what the timing probe logs itself under time/, not phases


class StepIntervals:
    """The wall time of a step, from one `Monitor.step` call to the next, at the steps asked for: a call that comes
    several step numbers after the last (a loop that steps the Monitor every k-th step, `gendiag attach` between the
    rounds it records) gives the mean over those steps."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.last_call: float | None = None
        self.last_step = 0
        self.steps = array("q")
        self.intervals = array("d")

    def __len__(self) -> int:
        return len(self.steps)

    def tick(self, step: int, keep: bool) -> None:
        """Read the clock at `Monitor.step`; keep the step time since the last call when `keep` (and there was one)."""
        now = self.clock()
        if self.last_call is not None and keep:
            self.steps.append(step)
            self.intervals.append((now - self.last_call) / max(step - self.last_step, 1))
        self.last_call, self.last_step = now, step


def is_data_phase(name: str) -> bool:
    """Whether a phase prepares data, by its name (it holds one of `DATA_WORDS`)."""
    return any(word in name.lower() for word in DATA_WORDS)


def phase_seconds(frame: "pd.DataFrame", steps: np.ndarray, intervals: np.ndarray) -> "pd.DataFrame":
    """Seconds per phase and the whole interval, one row per measured step, from a metrics table `frame` (columns
    tag, step, value; the phases' tags are "time/<phase>"); "other" is the untimed rest of the interval."""
    import pandas as pd

    ours = frame["tag"].str.startswith(("time/ms/", "time/share/")) | frame["tag"].isin(TIMING_OWN)
    phases = frame[frame["tag"].str.startswith("time/") & ~ours]
    table = phases.assign(phase=phases["tag"].str.slice(5)).pivot_table(
        index="step", columns="phase", values="value", aggfunc="sum")
    total = pd.Series(intervals, index=steps)
    joined = table.reindex(total.index).fillna(0.0)
    joined["other"] = (total - joined.sum(axis=1)).clip(lower=0.0)
    joined["total"] = np.maximum(total, joined.drop(columns="other").sum(axis=1))
    return joined


def summarise_timing(per_step: "pd.DataFrame") -> dict[str, Any]:
    """Milliseconds per step (mean and median), per phase, each phase's share of the total time, and the phases
    named like data loading (DATA_WORDS) with their summed share."""
    phases = [c for c in per_step.columns if c != "total"]
    seconds = per_step[phases].sum()
    total = float(per_step["total"].sum())
    shares = (seconds / total if total > 0 else seconds * 0).to_dict()
    data_phases = [p for p in phases if is_data_phase(p)]
    data_share = float(sum(shares[p] for p in data_phases))
    return {
        "steps_measured": len(per_step), "ms_per_step_total": 1000 * total / len(per_step),
        "ms_per_step_median": float(1000 * per_step["total"].median()),
        "ms_per_step": {p: float(1000 * seconds[p] / len(per_step)) for p in phases},
        "shares": {p: float(v) for p, v in shares.items()}, "data_phases": data_phases, "data_share": data_share,
    }

"""The user's sampler run on known fields: every call it makes to the field is recorded, so a sampler whose state
never changes (the step's result assigned to a new variable and dropped) shows as the same input at every call,
whatever its output; its outputs with several step counts are compared with one another and with the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

from gendiag.flow.exact_field import T_EPS, exact_velocity

if TYPE_CHECKING:
    import pandas as pd

STEP_COUNTS = (1, 4, 16, 64)

VelocityFn = Callable[[torch.Tensor, Any], torch.Tensor]
Sampler = Callable[[VelocityFn, torch.Tensor, int], torch.Tensor]


class RecordingField:
    """Wraps a velocity field, keeping each call's input state and time (the sampler's trajectory)."""

    def __init__(self, field: VelocityFn) -> None:
        self.field = field
        self.states: list[torch.Tensor] = []
        self.times: list[float] = []

    def __call__(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        self.states.append(x.detach().reshape(x.shape[0], -1).double().cpu().clone())
        self.times.append(float(torch.as_tensor(t, dtype=torch.float64).reshape(-1)[0]))
        return self.field(x, t)

    def state_changes(self) -> list[float]:
        """RMS distance of each call's input from the first call's, relative to the first's RMS size."""
        if not self.states:
            return []
        first = self.states[0]
        size = float(first.pow(2).mean().sqrt()) or 1.0
        return [float((state - first).pow(2).mean().sqrt()) / size for state in self.states]


def rms(x: torch.Tensor) -> float:
    """Root mean square of all values, in float64."""
    return float(x.double().pow(2).mean().sqrt())


def exact_linear_field(data: torch.Tensor) -> VelocityFn:
    """The exact marginal field of the data rows for the linear path from N(0, I), on the sampler's shapes and
    dtype, times clipped below 1 where it is singular: a field known to be right and non-zero."""
    def field(x: torch.Tensor, t: Any) -> torch.Tensor:
        times = torch.as_tensor(t, dtype=torch.float64).reshape(-1).clamp(max=1 - T_EPS)
        flat = x.reshape(x.shape[0], -1).double()
        return exact_velocity(flat, times, data, dtype=torch.float64).reshape(x.shape).to(x.dtype)
    return field


def nearest_distance(out: torch.Tensor, data: torch.Tensor) -> float:
    """Mean distance from each output row to its nearest data row, over the data's RMS spread about its mean."""
    data = data.double()
    spread = float((data - data.mean(0)).pow(2).sum(1).mean().sqrt()) or 1.0
    return float(torch.cdist(out, data).amin(1).mean()) / spread


@dataclass(frozen=True)
class SamplerRuns:
    """The sampler on each field with each of STEP_COUNTS: one table row per run (field, steps, field_calls,
    largest_state_change, output_change, distance_to_data, vs_most_steps), the outputs (rows, D) and the state
    changes per call, keyed by (field, steps); `reference` is the field the rule judges ("exact" where there is
    one)."""

    table: "pd.DataFrame"
    outputs: dict[tuple[str, int], torch.Tensor]
    trajectories: dict[tuple[str, int], list[float]]
    reference: str


def run_sampler(sampler: Sampler, fields: dict[str, VelocityFn], x0: torch.Tensor,
                data: torch.Tensor | None) -> SamplerRuns:
    """Run `sampler(field, x0, steps)` on every field with every step count, recording its calls."""
    import pandas as pd

    records, outputs, trajectories = [], {}, {}
    for field_name, field in fields.items():
        for steps in STEP_COUNTS:
            recorder = RecordingField(field)
            with torch.no_grad():
                out = sampler(recorder, x0.clone(), steps)
            if not isinstance(out, torch.Tensor) or out.shape != x0.shape:
                raise TypeError(f"sampler probe: the sampler must return a tensor of the start's shape "
                                f"{tuple(x0.shape)}, got {getattr(out, 'shape', type(out).__name__)}")
            out = out.detach().reshape(x0.shape[0], -1).double().cpu()
            changes = recorder.state_changes()
            outputs[(field_name, steps)] = out
            trajectories[(field_name, steps)] = changes
            records.append({
                "field": field_name, "steps": steps, "field_calls": len(changes),
                "largest_state_change": max(changes, default=0.0),
                "output_change": rms(out - x0.reshape(x0.shape[0], -1).double()) / (rms(x0) or 1.0),
                "distance_to_data": (nearest_distance(out, data) if data is not None and field_name == "exact"
                                     else float("nan")),
            })
    table = pd.DataFrame.from_records(records)
    table["vs_most_steps"] = [
        rms(outputs[(f, s)] - outputs[(f, STEP_COUNTS[-1])]) / (rms(outputs[(f, STEP_COUNTS[-1])]) or 1.0)
        for f, s in zip(table["field"], table["steps"])]
    return SamplerRuns(table, outputs, trajectories, "exact" if "exact" in fields else "learned")

"""Sampler check: does the user's sampler move its state, and does its output depend on the step count?

The user's sampler (fact `sampler=callable(velocity_fn, x0, steps) -> x1`) runs at the end of training from
the source (fact `source=callable(n)` or a batch, see `gendiag.quantities.source.draw_declared`; else observed
source rows) with several step counts, on the exact marginal field of the observed data (a field known to be right
and non-zero) and on the learned field.
Every call the sampler makes to the field is recorded, so a sampler whose state never changes (the step's result
assigned to a new variable and dropped) shows as the same input at every call, whatever its output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
import torch

from gendiag.quantities.source import draw_declared
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding
from gendiag.flow.exact_field import T_EPS, exact_velocity
from gendiag.flow.projection import principal_plane
from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.probes import register
from gendiag.probes.base import Probe, ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STEP_COUNTS = (1, 4, 16, 64)
FROZEN = 1e-6  # relative change below which a state or an output counts as unchanged

VelocityFn = Callable[[torch.Tensor, Any], torch.Tensor]


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


def _rms(x: torch.Tensor) -> float:
    return float(x.double().pow(2).mean().sqrt())


@register
class SamplerProbe(Probe):
    """Runs the user's sampler on the exact and the learned field with several step counts."""

    name = "sampler"
    tasks = ("flow",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self._data: Reservoir | None = None
        self._source: Reservoir | None = None
        self._table: pd.DataFrame | None = None
        self._problems: dict[str, Any] = {}
        self._figure: str | None = None

    def on_data(self, ctx: Any, batch: torch.Tensor, role: str) -> None:
        dim = int(batch[0].numel())
        if role == "data":
            if self._data is None:
                self._data = Reservoir(capacity_for(dim, 2000, 512), seed=31)
            self._data.add(batch)
        else:
            if self._source is None:
                self._source = Reservoir(capacity_for(dim, 256, 64), seed=37)
            self._source.add(batch)

    def finish(self, ctx: Any) -> ProbeSection | None:
        title = "Sampler check"
        sampler = ctx.facts.get("sampler")
        if sampler is None or not ctx.models:
            return ProbeSection(title=title, text=(
                "Not run: it needs a watched network and the fact `sampler=callable(velocity_fn, x0, steps) -> x1` "
                "given to the Monitor."))
        x0 = self._noise(ctx)
        if x0 is None:
            return ProbeSection(title=title, text=(
                "Not run: no noise to start from (give the fact `source=callable(n)` or observe "
                "source batches with `mon.observe_data(batch, role=\"source\")`)."))
        name = next(iter(ctx.models))
        unrunnable = ctx.cannot_evaluate(name)
        fields: dict[str, VelocityFn] = {}
        if unrunnable is None:
            fields["learned"] = lambda x, t: ctx.evaluate(name, x, t).to(x.dtype)
        data = self._data.rows if self._data is not None and len(self._data) >= 2 else None
        if data is not None and data.shape[1] == x0[0].numel():
            fields = {"exact": _exact_field(data), **fields}
        if not fields:
            return ProbeSection(title=title, text=f"Not run: the {unrunnable}, and no observed data of the start's "
                                                  "size gives the exact field.")
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
                    "output_change": _rms(out - x0.reshape(x0.shape[0], -1).double()) / (_rms(x0) or 1.0),
                    "distance_to_data": _nearest(out, data) if data is not None and field_name == "exact" else float("nan"),
                })
        table = pd.DataFrame.from_records(records)
        table["vs_most_steps"] = [
            _rms(outputs[(f, s)] - outputs[(f, STEP_COUNTS[-1])]) / (_rms(outputs[(f, STEP_COUNTS[-1])]) or 1.0)
            for f, s in zip(table["field"], table["steps"])]
        self._table = table
        reference = "exact" if "exact" in fields else "learned"
        self._problems = _problems(table[table["field"] == reference], reference)
        self._figure = ctx.save_figure(_figure(trajectories, outputs, data, x0, reference), "sampler_check")
        text = (f"The sampler given as a fact ran from {x0.shape[0]} noise samples with {', '.join(map(str, STEP_COUNTS))} "
                f"steps on the {' and the '.join(fields)} field. `largest_state_change`: how far the state passed to "
                "the field ever moved from the start (relative RMS; 0 means the sampler never updates its state); "
                "`output_change`: how far the output is from the start; `vs_most_steps`: output difference to the "
                f"{STEP_COUNTS[-1]}-step run; `distance_to_data`: mean distance from each output to its nearest data "
                "point, relative to the data's spread (on the exact field a correct sampler ends on the data).")
        if "exact" in fields:
            text += f" The exact field's times are clipped to 1 − {T_EPS} where the field is singular."
        else:
            text += " No observed data of the start's size, so only the learned field was used."
        if unrunnable is not None:
            text += f" The learned field was not run: the {unrunnable}."
        return ProbeSection(title=title, text=text, figures=[self._figure], table=table.round(6).set_index("field"))

    def findings(self, ctx: Any) -> list[Finding]:
        if not self._problems:
            return []
        problems = self._problems
        return [Finding(
            code="sampler-state-frozen", severity="critical",
            title="The sampler's state does not move" if problems["frozen"] else
                  "The sampler's output does not depend on the step count",
            message=(f"Run on the {problems['field']} field, a field that is not zero, the sampler "
                     + " and ".join(problems["reasons"]) + ". Sampling then returns (close to) the noise it "
                     "started from, whatever the network learned."),
            evidence=problems["evidence"],
            suggestion=("Update the sampler's state in place of a new variable at every step (x = x + h * "
                        "velocity_fn(x, t), and return that x), and make the step size 1/steps so that the step "
                        "count matters."),
            figure=self._figure,
        )]

    def state(self) -> dict[str, Any]:
        return {} if self._table is None else {"table": self._table.round(6).to_dict(orient="records"),
                                               "problems": self._problems.get("reasons", [])}

    def _noise(self, ctx: Any) -> torch.Tensor | None:
        """Start noise: from the fact `source` (with the probe's own generator where it takes one), else observed
        source rows."""
        source = ctx.facts.get("source")
        n = 256 if (self._data is None or self._data.rows.shape[1] <= 2) else 32
        if source is not None:
            return draw_declared(source, n, seed=41).float().cpu()
        if self._source is not None and len(self._source) >= 2:
            rows = self._source.rows[:n]
            return rows.reshape(rows.shape[0], *self._source.sample_shape).clone()
        return None


def _exact_field(data: torch.Tensor) -> VelocityFn:
    def field(x: torch.Tensor, t: Any) -> torch.Tensor:
        times = torch.as_tensor(t, dtype=torch.float64).reshape(-1).clamp(max=1 - T_EPS)
        flat = x.reshape(x.shape[0], -1).double()
        return exact_velocity(flat, times, data, dtype=torch.float64).reshape(x.shape).to(x.dtype)
    return field


def _nearest(out: torch.Tensor, data: torch.Tensor) -> float:
    """Mean distance from each output row to its nearest data row, over the data's RMS spread about its mean."""
    data = data.double()
    spread = float((data - data.mean(0)).pow(2).sum(1).mean().sqrt()) or 1.0
    return float(torch.cdist(out, data).amin(1).mean()) / spread


def _problems(rows: pd.DataFrame, field: str) -> dict[str, Any]:
    """What is wrong with the sampler on the reference field (empty when nothing is)."""
    multi = rows[rows["steps"] > 1]
    reasons = []
    never_called = bool((rows["field_calls"] == 0).all())
    frozen = bool((multi["field_calls"] >= 2).any() and (multi["largest_state_change"] < FROZEN).all())
    if never_called:
        reasons.append("never called the velocity field")
    elif frozen:
        reasons.append(f"passed the same state to the field at every call (largest relative change "
                       f"{multi['largest_state_change'].max():.2g} over {int(multi['field_calls'].max())} calls)")
    if bool((rows["output_change"] < FROZEN).all()):
        reasons.append("returned its start unchanged")
    single, most = rows[rows["steps"] == STEP_COUNTS[0]], rows[rows["steps"] == STEP_COUNTS[-1]]
    if float(single["vs_most_steps"].iloc[0]) < FROZEN and float(most["output_change"].iloc[0]) >= FROZEN:
        reasons.append(f"gave the same output with {STEP_COUNTS[0]} and {STEP_COUNTS[-1]} steps")
    if not reasons:
        return {}
    evidence = {"field": field, "step_counts": list(STEP_COUNTS),
                "field_calls": rows["field_calls"].astype(int).tolist(),
                "largest_state_change": rows["largest_state_change"].round(8).tolist(),
                "output_change": rows["output_change"].round(8).tolist(),
                "output_difference_to_most_steps": rows["vs_most_steps"].round(8).tolist(),
                "threshold": FROZEN}
    if field == "exact":
        evidence["distance_to_data"] = rows["distance_to_data"].round(4).tolist()
    return {"field": field, "reasons": reasons, "frozen": never_called or frozen, "evidence": evidence}


def _figure(trajectories: dict[tuple[str, int], list[float]], outputs: dict[tuple[str, int], torch.Tensor],
            data: torch.Tensor | None, x0: torch.Tensor, reference: str) -> Figure:
    """Left: how far the state moved at each call to the field, per step count. Right: outputs on the data."""
    figure, axes = new_figure(1, 2, figsize=(11, 4))
    for steps in STEP_COUNTS:
        changes = trajectories[(reference, steps)]
        if changes:
            axes[0].plot(torch.linspace(0, 1, len(changes)), changes, "o-" if len(changes) < 20 else "-",
                         ms=3, label=f"{steps} steps")
    axes[0].set_xlabel("fraction of the sampler's field calls")
    axes[0].set_ylabel("state change since the start (relative RMS)")
    axes[0].set_title(f"sampler state on the {reference} field")
    legend(axes[0], fontsize=8)
    start = x0.reshape(x0.shape[0], -1).double()
    final = outputs[(reference, STEP_COUNTS[-1])]
    plane = principal_plane(torch.cat([data.double(), start]) if data is not None else torch.cat([start, final]))
    if data is not None:
        xy = plane.project(data[:1000])
        axes[1].scatter(xy[:, 0], xy[:, 1], s=3, color="0.7", alpha=0.5, label="data")
    for rows, colour, label in ((start, "tab:green", "start noise"),
                                (final, "tab:orange", f"output, {STEP_COUNTS[-1]} steps")):
        xy = plane.project(rows)
        axes[1].scatter(xy[:, 0], xy[:, 1], s=6, color=colour, alpha=0.7, label=label)
    axes[1].set_xlabel(plane.axis_labels()[0])
    axes[1].set_ylabel(plane.axis_labels()[1])
    axes[1].set_title(f"sampler output on the {reference} field")
    legend(axes[1], fontsize=8, markerscale=2)
    figure.tight_layout()
    return figure

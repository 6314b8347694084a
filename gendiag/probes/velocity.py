"""The learned velocity field beside the exact one, and what the field's output depends on.

At the end of training: quivers of the watched network's field at t in {0, 0.25, 0.5, 0.75, 1} over the data's
bounding box (on the plane of the data's two leading principal components when D > 2), beside the exact marginal
field of the observed data for the probability path the network was trained on (fact `path=`: a name of
`reference_models.paths`, "linear" or "sqrt", or an affine path object; linear when not given; an unknown name
skips the comparison with an info note) from N(0, I) noise, or from the observed source rows (else the
declared source, fact `source=`) when they are not N(0, I) (eight Gaussians, say: see `exact_velocity`'s `source`);
the field error per t on points of that path; and two sensitivities, each the learned field's relative variation
divided by the exact field's:

- to x: at a fixed t, how much the output varies across inputs x (relative to its size);
- to t: at a fixed x, how much the output varies as t goes from 0 to 0.9.

Near 1 the network follows x (or t) as much as the exact field does; near 0 it ignores it: `field-ignores-x`,
`field-ignores-t`.

The comparison is made whenever the rules are asked (each live check, and the end); each one's numbers are kept
by step and logged at that step by `finish`, so TensorBoard's flow/* curves have a point per comparison.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from gendiag.figures.velocity import QUIVER_CAPTION, SENSITIVITY_CAPTION, quivers, sensitivity, shows_quivers
from gendiag.findings import Finding
from gendiag.flow.exact_field import source_bandwidth
from gendiag.flow.projection import Plane, principal_plane
from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.probes import register
from gendiag.probes.base import Probe, not_run
from gendiag.report.section import ProbeSection
from gendiag.quantities.representation import noise_check
from gendiag.quantities.source import declared_rows
from gendiag.quantities.velocity import (
    LAST_T, FieldComparison, compare_fields, exact_field, known_path, mean_std, path_name, path_points,
)
from gendiag.rules.thresholds import VELOCITY_QUIVER_SHARE
from gendiag.rules.velocity import field_findings, path_unknown, rounded
from reference_models.paths import PATHS

QUIVER_FIGURE, SENSITIVITY_FIGURE = "flow_velocity_quivers", "flow_velocity_sensitivity"
NOT_AT_T = "not measured (sensitivity to x is read at t = 0, 0.25, 0.5, 0.75 only)"
TITLE = "Velocity field: learned against exact"


@register
class VelocityProbe(Probe):
    """Quivers, field error and sensitivities of a flow-matching network against the exact marginal field."""

    name = "velocity"
    tasks = ("flow",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self._data: Reservoir | None = None
        self._source: Reservoir | None = None
        self._source_moments = torch.zeros(3, dtype=torch.float64)  # count, sum, sum of squares
        self._cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._over_time: dict[int, dict[str, float]] = {}  # step -> the flow/* scalars measured there

    def on_data(self, ctx: Any, batch: torch.Tensor, role: str) -> None:
        if role == "data":
            if self._data is None:
                self._data = Reservoir(capacity_for(int(batch[0].numel()), 2000, 512), seed=23)
            self._data.add(batch)
        else:
            if self._source is None:
                self._source = Reservoir(capacity_for(int(batch[0].numel()), 2000, 512), seed=29)
            self._source.add(batch)
            values = batch.detach().double()
            moments = torch.stack([values.new_full((), float(values.numel())), values.sum(), values.pow(2).sum()])
            self._source_moments = moments + self._source_moments.to(moments.device)  # kept on the batch's device

    def _measure(self, ctx: Any) -> dict[str, Any]:
        """The comparison on what was gathered so far, cached on the step and the rows seen: {"skip": text,
        "finding": ...} when it cannot run, else the model, the fields, the comparison and the source used."""
        key = (ctx.step, None if self._data is None else self._data.seen,
               None if self._source is None else self._source.seen, tuple(ctx.models))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        self._cache = (key, self._measure_now(ctx))
        if "comparison" in self._cache[1]:
            self._over_time[ctx.step] = scalars(self._cache[1]["comparison"])
        return self._cache[1]

    def _measure_now(self, ctx: Any) -> dict[str, Any]:
        if not ctx.models or self._data is None or len(self._data) < 2:
            return {"skip": ("Not drawn: it needs a watched network (`mon.watch`) and observed data batches "
                             "(`mon.observe_data(batch, role=\"data\")`).")}
        name = next(iter(ctx.models))
        unrunnable = ctx.cannot_evaluate(name)
        if unrunnable is not None:
            return {"skip": f"Not drawn: the {unrunnable}.", "finding": not_run(self.name, unrunnable)}
        given = ctx.facts.get("path")
        path = known_path(given)
        if path is None:
            return {"skip": (f"Not drawn: the fact path={given!r} names a path gendiag has no exact field for "
                             f"(known: {', '.join(PATHS)})."), "finding": path_unknown(given, list(PATHS))}
        data = self._data.rows
        shape = self._data.sample_shape

        def learned(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
            return ctx.evaluate(name, x.float().reshape(-1, *shape), t).reshape(x.shape[0], -1).double()

        source, origin = self._empirical_source(ctx, data.shape[1])
        bandwidth = None if source is None else source_bandwidth(source)
        exact = exact_field(data, path, source, bandwidth)
        comparison = compare_fields(learned, exact, path_points(data, path, source, bandwidth))
        return {"model": name, "path": path_name(path), "learned": learned, "exact": exact, "data": data,
                "comparison": comparison, "source_mean_std": mean_std(self._source_moments),
                "empirical_source": None if source is None else {"rows": len(source), "origin": origin,
                                                                 "bandwidth": round(bandwidth, 5)}}

    def finish(self, ctx: Any) -> ProbeSection | None:
        measured = self._measure(ctx)
        if "skip" in measured:
            return ProbeSection(title=TITLE, text=measured["skip"])
        comparison: FieldComparison = measured["comparison"]
        errors, sensitivity_x = comparison.field_error, comparison.sensitivity_x
        data = measured["data"]
        plane = principal_plane(data)
        table = pd.DataFrame({"t": list(errors), "relative_error": list(errors.values()),
                              "sensitivity_x": [sensitivity_x.get(t, NOT_AT_T) for t in errors]}).set_index("t")
        for step, values in sorted(self._over_time.items()):
            for tag, value in values.items():
                ctx.log_scalar(tag, value, step)
        ctx.add_chart("flow", "field error by t (learned vs exact)", [r"flow/field_error/.*"])
        ctx.add_chart("flow", "sensitivity to x by t (learned / exact)", [r"flow/sensitivity_x/.*"])
        figures = [ctx.draw_figure(QUIVER_FIGURE, quivers, plane, data, measured["learned"], measured["exact"],
                                   caption=QUIVER_CAPTION)] if shows_quivers(plane) else []
        figures.append(ctx.draw_figure(SENSITIVITY_FIGURE, sensitivity, errors, sensitivity_x,
                                       comparison.sensitivity_t, comparison.over_t_learned, comparison.over_t_exact,
                                       plane, caption=SENSITIVITY_CAPTION))
        return ProbeSection(title=TITLE, text=_text(measured, plane) + " " + over_time(sorted(self._over_time)),
                            figures=figures, table=table)

    def findings(self, ctx: Any) -> list[Finding]:
        measured = self._measure(ctx)
        if "skip" in measured:
            return [measured["finding"]] if "finding" in measured else []
        return field_findings(measured["model"], measured["comparison"], measured["data"].shape[1],
                              f"figures/{SENSITIVITY_FIGURE}.png")

    def state(self) -> dict[str, Any]:
        measured = self._cache[1] if self._cache is not None else {}
        if "comparison" not in measured:
            return {}
        comparison = measured["comparison"]
        return {"model": measured["model"], "field_error": rounded(comparison.field_error),
                "sensitivity_x": rounded(comparison.sensitivity_x), "sensitivity_t": comparison.sensitivity_t,
                "data_points": len(measured["data"]), "dim": measured["data"].shape[1],
                "source_mean_std": measured["source_mean_std"], "empirical_source": measured["empirical_source"],
                "path": measured["path"]}

    def _empirical_source(self, ctx: Any, dim: int) -> tuple[torch.Tensor | None, str]:
        """The source rows (float64) the exact field starts from when the source is not N(0, I), and where they
        came from: the observed ones, else rows of the declared source (fact `source`); None for N(0, I) noise or
        when neither exists."""
        if self._source is not None and len(self._source) >= 2 and self._source.rows.shape[1] == dim:
            rows, origin = self._source.rows.double(), "observed"
        elif ctx.facts.get("source") is not None:
            rows, origin = declared_rows(ctx.facts["source"], 512), "declared"
            if rows.shape[1] != dim or len(rows) < 2:
                return None, origin
        else:
            return None, ""
        return (None if noise_check(rows).is_noise else rows), origin


def scalars(comparison: FieldComparison) -> dict[str, float]:
    """The flow/* scalars of one comparison, by tag."""
    values = {f"flow/field_error/t={t:.2f}": error for t, error in comparison.field_error.items()}
    values.update({f"flow/sensitivity_x/t={t:.2f}": value for t, value in comparison.sensitivity_x.items()})
    values["flow/sensitivity_t"] = comparison.sensitivity_t
    return values


def over_time(steps: list[int]) -> str:
    """Where TensorBoard's flow/* points come from: the comparison runs the network and the exact field (too
    dear for every step), so it is taken at each live check and at the end, one point per measurement."""
    if len(steps) == 1:
        return (f"In TensorBoard the flow/* scalars hold one point, at step {steps[0]}: the comparison was made once, "
                "at the end (with live checks on, it is also made at each check, one point each).")
    shown = ", ".join(map(str, steps[:12])) + (f", … ({len(steps)} in all)" if len(steps) > 12 else "")
    return (f"In TensorBoard the flow/* scalars hold one point per comparison, at the live checks and the end: "
            f"steps {shown}.")


def _text(measured: dict[str, Any], plane: Plane) -> str:
    comparison: FieldComparison = measured["comparison"]
    where = ("in the data's own coordinates" if plane.identity else
             f"on the plane of the data's two leading principal components ({100 * plane.explained[0]:.0f}% and "
             f"{100 * plane.explained[1]:.0f}% of its variance; arrows show the field's components in that plane)")
    if not shows_quivers(plane):
        where = (f"compared in all {measured['data'].shape[1]} dimensions (no quiver plot: the data's two leading "
                 f"principal components hold only {sum(plane.explained):.0%} of its variance, under "
                 f"{VELOCITY_QUIVER_SHARE:.0%}, so arrows on that plane would show little of either field)")
    empirical = measured["empirical_source"]
    source = ("N(0, I) noise" if empirical is None else
              f"the {empirical['origin']} source ({empirical['rows']} rows read as a mixture of Gaussians of "
              f"standard deviation {empirical['bandwidth']:.3g}, since it is not N(0, I))")
    top, bottom = (" (top)", " (bottom)") if shows_quivers(plane) else ("", "")
    text = [f"The field of `{measured['model']}`{top} and the exact marginal field of {len(measured['data'])} "
            f"observed data points for the {measured['path']} path from {source}{bottom}, {where}. t = 1 is drawn "
            f"at t = {LAST_T} (the exact field is singular at 1). `relative_error` is mean |u_θ − u*|² / mean |u*|² "
            "on points x_t of that path; `sensitivity_x` is how much the learned output varies across x at that "
            f"t relative to the exact field (1: as much; 0: not at all); sensitivity to t (0 to 0.9, at fixed x) "
            f"is {comparison.sensitivity_t:.3f}."]
    moments = measured["source_mean_std"]
    if empirical is None and moments is not None and (abs(moments[0]) > 0.1 or abs(moments[1] - 1) > 0.2):
        text.append(f"The observed source batches have mean {moments[0]:.3g} and standard deviation "
                    f"{moments[1]:.3g}, not those of N(0, I): the exact field shown is the one a network would "
                    "learn with standard normal noise, not with this source.")
    return " ".join(text)

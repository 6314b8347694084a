"""The learned velocity field beside the exact one, and what the field's output depends on.

At the end of training: quivers of the watched network's field at t in {0, 0.25, 0.5, 0.75, 1} over the data's
bounding box (on the plane of the data's two leading principal components when D > 2), beside the exact marginal
field of the observed data for the linear path from N(0, I) noise, or from the observed source rows (else the
declared source, fact `source=`) when they are not N(0, I) (eight Gaussians, say: see `exact_velocity`'s `source`);
the field error per t on points of that path; and two sensitivities, each the learned field's relative variation
divided by the exact field's:

- to x: at a fixed t, how much the output varies across inputs x (relative to its size);
- to t: at a fixed x, how much the output varies as t goes from 0 to 0.9.

Near 1 the network follows x (or t) as much as the exact field does; near 0 it ignores it: `field-ignores-x`,
`field-ignores-t`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
import torch

from gendiag.checks.representation import noise_check
from gendiag.checks.source import declared_rows
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding
from gendiag.flow.exact_field import exact_velocity, source_bandwidth
from gendiag.flow.projection import Plane, bounding_box, grid, principal_plane
from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.probes import register
from gendiag.probes.base import Probe, not_run
from gendiag.report.section import ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

QUIVER_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)
LAST_T = 0.99
SENSITIVITY_X_TIMES = (0.0, 0.25, 0.5, 0.75)
SENSITIVITY_T_TIMES = tuple(i / 10 for i in range(10))
GRID_SIZE = 15
IGNORES_X, IGNORES_T = 0.1, 0.1

Field = Callable[[torch.Tensor, float | torch.Tensor], torch.Tensor]


def relative_variation(values: torch.Tensor, dim: int) -> float:
    """RMS deviation of `values` from their mean along `dim`, divided by their RMS: how much the vectors (last
    axis) change along `dim` compared with their size (0: not at all)."""
    values = values.double()
    spread = (values - values.mean(dim, keepdim=True)).pow(2).sum(-1).mean()
    size = values.pow(2).sum(-1).mean()
    return float((spread / size).sqrt()) if size > 0 else 0.0


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
        self._summary: dict[str, Any] = {}
        self._figures: dict[str, str] = {}
        self._not_run: str | None = None

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
            self._source_moments += torch.stack([torch.tensor(float(values.numel()), dtype=torch.float64),
                                                 values.sum(), values.pow(2).sum()])

    def finish(self, ctx: Any) -> ProbeSection | None:
        title = "Velocity field: learned against exact"
        if not ctx.models or self._data is None or len(self._data) < 2:
            return ProbeSection(title=title, text=(
                "Not drawn: it needs a watched network (`mon.watch`) and observed data batches "
                "(`mon.observe_data(batch, role=\"data\")`)."))
        name = next(iter(ctx.models))
        self._not_run = ctx.cannot_evaluate(name)
        if self._not_run is not None:
            return ProbeSection(title=title, text=f"Not drawn: the {self._not_run}.")
        data = self._data.rows
        shape = self._data.sample_shape

        def learned(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
            return ctx.evaluate(name, x.float().reshape(-1, *shape), t).reshape(x.shape[0], -1).double()

        source, origin = self._empirical_source(ctx, data.shape[1])
        bandwidth = None if source is None else source_bandwidth(source)

        def exact(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
            return exact_velocity(x.double(), t, data, chunk=512, dtype=torch.float64, source=source,
                                  bandwidth=bandwidth)

        generator = torch.Generator().manual_seed(7)
        plane = principal_plane(data)
        points = min(256 if data.shape[1] <= 2 else 128, len(data))
        x1 = data[torch.randint(0, len(data), (points,), generator=generator)].double()
        noise = torch.randn(x1.shape, generator=generator, dtype=torch.float64)
        if source is not None:  # a draw from the source mixture the exact field assumes
            noise = source[torch.randint(0, len(source), (points,), generator=generator)] + bandwidth * noise

        def path(t: float) -> torch.Tensor:
            return t * x1 + (1 - t) * noise

        errors = {}
        for t in QUIVER_TIMES:
            at = min(t, LAST_T)
            u_learned, u_exact = learned(path(at), at), exact(path(at), at)
            errors[at] = float((u_learned - u_exact).pow(2).sum(1).mean() / u_exact.pow(2).sum(1).mean())
        sensitivity_x = {t: relative_variation(learned(path(t), t), 0) / relative_variation(exact(path(t), t), 0)
                         for t in SENSITIVITY_X_TIMES}
        fixed = path(0.5)
        over_t_learned = torch.stack([learned(fixed, t) for t in SENSITIVITY_T_TIMES], dim=1)
        over_t_exact = torch.stack([exact(fixed, t) for t in SENSITIVITY_T_TIMES], dim=1)
        sensitivity_t = relative_variation(over_t_learned, 1) / relative_variation(over_t_exact, 1)

        table = pd.DataFrame({"t": list(errors), "relative_error": list(errors.values()),
                              "sensitivity_x": [sensitivity_x.get(t, float("nan")) for t in errors]}).set_index("t")
        for t, error in errors.items():
            ctx.log_scalar(f"flow/field_error/t={t:.2f}", error)
        for t, value in sensitivity_x.items():
            ctx.log_scalar(f"flow/sensitivity_x/t={t:.2f}", value)
        ctx.log_scalar("flow/sensitivity_t", sensitivity_t)
        ctx.add_chart("flow", "field error by t (learned vs exact)", [r"flow/field_error/.*"])
        ctx.add_chart("flow", "sensitivity to x by t (learned / exact)", [r"flow/sensitivity_x/.*"])

        self._figures["quiver"] = ctx.save_figure(_quivers(plane, data, learned, exact), "flow_velocity_quivers")
        self._figures["sensitivity"] = ctx.save_figure(
            _sensitivity_figure(errors, sensitivity_x, sensitivity_t, over_t_learned, over_t_exact, plane),
            "flow_velocity_sensitivity")
        self._summary = {"model": name, "field_error": errors, "sensitivity_x": sensitivity_x,
                         "sensitivity_t": sensitivity_t, "data_points": len(data), "dim": data.shape[1],
                         "source_mean_std": self._source_mean_std(),
                         "empirical_source": None if source is None else {"rows": len(source), "origin": origin,
                                                                          "bandwidth": round(bandwidth, 5)}}
        return ProbeSection(title=title, text=self._text(plane), figures=list(self._figures.values()), table=table)

    def findings(self, ctx: Any) -> list[Finding]:
        if self._not_run is not None:
            return [not_run(self.name, self._not_run)]
        if not self._summary:
            return []
        found = []
        summary = self._summary
        most_x = max(summary["sensitivity_x"].values())
        if most_x < IGNORES_X:
            found.append(Finding(
                code="field-ignores-x", severity="critical",
                title="The learned velocity barely depends on the input x",
                message=(f"At every t checked, the output of `{summary['model']}` varies across inputs x at most "
                         f"{most_x:.3f} times as much (relative to its size) as the exact field does. A field that "
                         "does not look at x moves every sample the same way, so sampling cannot turn noise into data."),
                evidence={"sensitivity_x_by_t": {f"{t:.2f}": round(v, 4) for t, v in summary["sensitivity_x"].items()},
                          "threshold": IGNORES_X, "field_error_by_t": _rounded(summary["field_error"])},
                suggestion=("Check that the network is fed x_t (not a constant, a detached copy or the wrong argument), "
                            "that x is on a scale the network can use (normalise it), and that it trained at all "
                            "(learning rate, gradient norms)."),
                figure=self._figures["sensitivity"]))
        if summary["sensitivity_t"] < IGNORES_T:
            found.append(Finding(
                code="field-ignores-t", severity="warning",
                title="The learned velocity barely depends on the time t",
                message=(f"At fixed inputs, the output of `{summary['model']}` changes {summary['sensitivity_t']:.3f} "
                         "times as much (relative to its size) as the exact field's when t goes from 0 to 0.9. The "
                         "exact field changes with t (it points from the noise toward the data mean at t = 0 and "
                         "toward single data points near t = 1); a field that ignores t cannot follow it."),
                evidence={"sensitivity_t": round(summary["sensitivity_t"], 4), "threshold": IGNORES_T,
                          "t_values": list(SENSITIVITY_T_TIMES), "dim": summary["dim"]},
                suggestion=("Give the network t in a form it can use: a sinusoidal or Fourier embedding of t (not one "
                            "raw number concatenated to many input features), or t added to every hidden layer."),
                figure=self._figures["sensitivity"]))
        return found

    def state(self) -> dict[str, Any]:
        if not self._summary:
            return {}
        return {**self._summary, "field_error": _rounded(self._summary["field_error"]),
                "sensitivity_x": _rounded(self._summary["sensitivity_x"])}

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

    def _source_mean_std(self) -> tuple[float, float] | None:
        count, total, squares = (float(v) for v in self._source_moments)
        if count < 2:
            return None
        mean = total / count
        return mean, max(squares / count - mean ** 2, 0.0) ** 0.5

    def _text(self, plane: Plane) -> str:
        summary = self._summary
        where = ("in the data's own coordinates" if plane.identity else
                 f"on the plane of the data's two leading principal components ({100 * plane.explained[0]:.0f}% and "
                 f"{100 * plane.explained[1]:.0f}% of its variance; arrows show the field's components in that plane)")
        empirical = summary["empirical_source"]
        source = ("N(0, I) noise" if empirical is None else
                  f"the {empirical['origin']} source ({empirical['rows']} rows read as a mixture of Gaussians of "
                  f"standard deviation {empirical['bandwidth']:.3g}, since it is not N(0, I))")
        text = [f"The field of `{summary['model']}` (top) and the exact marginal field of {summary['data_points']} "
                f"observed data points for the linear path from {source} (bottom), {where}. t = 1 is drawn at "
                f"t = {LAST_T} (the exact field is singular at 1). `relative_error` is mean |u_θ − u*|² / mean |u*|² "
                "on points x_t of that path; `sensitivity_x` is how much the learned output varies across x at that "
                f"t relative to the exact field (1: as much; 0: not at all); sensitivity to t (0 to 0.9, at fixed x) "
                f"is {summary['sensitivity_t']:.3f}."]
        moments = summary["source_mean_std"]
        if empirical is None and moments is not None and (abs(moments[0]) > 0.1 or abs(moments[1] - 1) > 0.2):
            text.append(f"The observed source batches have mean {moments[0]:.3g} and standard deviation "
                        f"{moments[1]:.3g}, not those of N(0, I): the exact field shown is the one a network would "
                        "learn with standard normal noise, not with this source.")
        return " ".join(text)


def _rounded(values: dict[float, float]) -> dict[str, float]:
    return {f"{t:.2f}": round(v, 4) for t, v in values.items()}


def _quivers(plane: Plane, data: torch.Tensor, learned: Field, exact: Field) -> Figure:
    """Two rows of quivers (learned, exact) at the quiver times over the data's bounding box on `plane`."""
    data_xy = plane.project(data)
    box = bounding_box(data_xy)
    coords = grid(box, GRID_SIZE)
    points = plane.lift(coords)
    figure, axes = new_figure(2, len(QUIVER_TIMES), figsize=(2.8 * len(QUIVER_TIMES), 5.6), sharex=True, sharey=True)
    for column, t in enumerate(QUIVER_TIMES):
        at = min(t, LAST_T)
        for row, (field, label) in enumerate(((learned, "learned"), (exact, "exact"))):
            arrows = plane.project_vectors(field(points, at))
            axis = axes[row, column]
            axis.scatter(data_xy[:400, 0], data_xy[:400, 1], s=2, color="0.7", alpha=0.5)
            axis.quiver(coords[:, 0], coords[:, 1], arrows[:, 0], arrows[:, 1],
                        arrows.norm(dim=1), cmap="viridis", angles="xy")
            axis.set_title(f"{label}, t = {at:g}", fontsize=9)
    labels = plane.axis_labels()
    for axis in axes[-1]:
        axis.set_xlabel(labels[0], fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel(labels[1], fontsize=8)
    figure.tight_layout()
    return figure


def _sensitivity_figure(errors: dict[float, float], sensitivity_x: dict[float, float], sensitivity_t: float,
                        over_t_learned: torch.Tensor, over_t_exact: torch.Tensor, plane: Plane) -> Figure:
    """Field error per t; sensitivity to x per t and to t; the output along the first plane axis against t for a
    few fixed inputs, learned (solid) and exact (dashed)."""
    figure, axes = new_figure(1, 3, figsize=(14, 3.8))
    axes[0].plot(list(errors), list(errors.values()), "o-")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("t")
    axes[0].set_ylabel("mean |u_θ − u*|² / mean |u*|²")
    axes[0].set_title("field error")
    axes[1].plot(list(sensitivity_x), list(sensitivity_x.values()), "o-", label="to x (per t)")
    axes[1].axhline(sensitivity_t, color="tab:red", label=f"to t ({sensitivity_t:.3f})")
    axes[1].axhline(IGNORES_X, color="0.4", ls="--", lw=1, label=f"'ignores' below {IGNORES_X}")
    axes[1].set_xlabel("t")
    axes[1].set_ylabel("learned / exact relative variation")
    axes[1].set_title("sensitivity")
    legend(axes[1], fontsize=8)
    times = list(SENSITIVITY_T_TIMES)
    along_learned = plane.project_vectors(over_t_learned[:4].reshape(-1, over_t_learned.shape[-1])).reshape(-1, len(times), 2)
    along_exact = plane.project_vectors(over_t_exact[:4].reshape(-1, over_t_exact.shape[-1])).reshape(-1, len(times), 2)
    for index in range(along_learned.shape[0]):
        colour = f"C{index}"
        axes[2].plot(times, along_learned[index, :, 0], "-", color=colour)
        axes[2].plot(times, along_exact[index, :, 0], "--", color=colour)
    axes[2].set_xlabel("t")
    axes[2].set_ylabel(f"velocity along {plane.axis_labels()[0].split(' ')[0]}")
    axes[2].set_title("fixed x: learned (solid), exact (dashed)")
    figure.tight_layout()
    return figure

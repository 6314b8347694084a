"""Sampler check: does the user's sampler move its state, and does its output depend on the step count?

The user's sampler (fact `sampler=callable(velocity_fn, x0, steps) -> x1`) runs at the end of training from
the source (fact `source=callable(n)` or a batch, see `gendiag.quantities.source.draw_declared`; else observed
source rows) with several step counts, on the exact marginal field of the observed data (a field known to be right
and non-zero) and on the learned field.
Every call the sampler makes to the field is recorded, so a sampler whose state never changes (the step's result
assigned to a new variable and dropped) shows as the same input at every call, whatever its output."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.figures.sampler import CAPTION, sampler_check
from gendiag.findings import Finding
from gendiag.flow.exact_field import T_EPS
from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection
from gendiag.quantities.sampler import STEP_COUNTS, SamplerRuns, VelocityFn, exact_linear_field, run_sampler
from gendiag.quantities.source import draw_declared
from gendiag.rules.sampler import sampler_findings, sampler_problems

FIGURE = "sampler_check"
TITLE = "Sampler check"


@register
class SamplerProbe(Probe):
    """Runs the user's sampler on the exact and the learned field with several step counts."""

    name = "sampler"
    tasks = ("flow",)
    live = False  # runs the user's sampler a dozen times (1.4 s on the flagship); its findings are outcomes

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self._data: Reservoir | None = None
        self._source: Reservoir | None = None
        self._cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None

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

    def _measure(self, ctx: Any) -> dict[str, Any]:
        """The sampler's runs on what was gathered so far, cached on the step and the rows seen: {"skip": text}
        when it cannot run, else the runs, the start, the data and the problems the rule sees."""
        key = (ctx.step, None if self._data is None else self._data.seen,
               None if self._source is None else self._source.seen, tuple(ctx.models))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._measure_now(ctx))
        return self._cache[1]

    def _measure_now(self, ctx: Any) -> dict[str, Any]:
        sampler = ctx.facts.get("sampler")
        if sampler is None or not ctx.models:
            return {"skip": ("Not run: it needs a watched network and the fact `sampler=callable(velocity_fn, x0, "
                             "steps) -> x1` given to the Monitor.")}
        x0 = self._noise(ctx)
        if x0 is None:
            return {"skip": ("Not run: no noise to start from (give the fact `source=callable(n)` or observe "
                             "source batches with `mon.observe_data(batch, role=\"source\")`).")}
        name = next(iter(ctx.models))
        unrunnable = ctx.cannot_evaluate(name)
        fields: dict[str, VelocityFn] = {}
        if unrunnable is None:
            fields["learned"] = lambda x, t: ctx.evaluate(name, x, t).to(x.dtype)
        data = self._data.rows if self._data is not None and len(self._data) >= 2 else None
        if data is not None and data.shape[1] == x0[0].numel():
            fields = {"exact": exact_linear_field(data), **fields}
        if not fields:
            return {"skip": f"Not run: the {unrunnable}, and no observed data of the start's size gives the exact "
                            "field."}
        runs = run_sampler(sampler, fields, x0, data)
        problems = sampler_problems(runs.table[runs.table["field"] == runs.reference], runs.reference)
        return {"runs": runs, "x0": x0, "data": data, "fields": list(fields), "unrunnable": unrunnable,
                "problems": problems}

    def finish(self, ctx: Any) -> ProbeSection | None:
        measured = self._measure(ctx)
        if "skip" in measured:
            return ProbeSection(title=TITLE, text=measured["skip"])
        runs: SamplerRuns = measured["runs"]
        x0, fields = measured["x0"], measured["fields"]
        shown = [field for field in ("exact", "learned") if (field, STEP_COUNTS[-1]) in runs.outputs]
        figure = ctx.draw_figure(FIGURE, sampler_check, runs.trajectories, runs.outputs, measured["data"], x0,
                                 shown or [runs.reference], caption=CAPTION)
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
        if measured["unrunnable"] is not None:
            text += f" The learned field was not run: the {measured['unrunnable']}."
        table = runs.table.round(6).set_index("field").astype({"distance_to_data": object})
        table.loc[table["distance_to_data"].isna(), "distance_to_data"] = "not measured (exact field only)"
        return ProbeSection(title=TITLE, text=text, figures=[figure], table=table)

    def findings(self, ctx: Any) -> list[Finding]:
        measured = self._measure(ctx)
        if "skip" in measured:
            return []
        return sampler_findings(measured["problems"], f"figures/{FIGURE}.png")

    def state(self) -> dict[str, Any]:
        measured = self._cache[1] if self._cache is not None else {}
        if "runs" not in measured:
            return {}
        return {"table": measured["runs"].table.round(6).to_dict(orient="records"),
                "problems": measured["problems"].get("reasons", [])}

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

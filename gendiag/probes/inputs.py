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

from typing import Any

import torch

from gendiag.figures.inputs import train_vs_sampling
from gendiag.findings import Finding
from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.probes import register
from gendiag.probes.base import ForwardCall, Probe
from gendiag.report.section import ProbeSection
from gendiag.quantities.inputs import (
    KEPT_INPUT_ROWS, PERMUTATIONS, ROWS_PER_TRAIN_CALL, InputsComparison, compare_inputs,
)
from gendiag.quantities.time_scale import time_scale_gap
from gendiag.rules.inputs import bins, inputs_findings, ratios, time_scale_finding

FIGURE = "inputs_train_vs_sampling"
TITLE = "Training versus sampling inputs"


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
        self._cache: tuple[tuple[Any, ...], InputsComparison | None] | None = None
        self._through: dict[str, str] = {}  # network -> the EMA copy its sampling calls were made through

    def on_forward(self, ctx: Any, call: ForwardCall) -> None:
        """Keep a few rows of each training call (the Monitor already hands over only every `every`-th one, its rows
        in random order, so the first few are a uniform sample) and every row of the sampling calls, with their
        times. Sampling calls are also followed for classifier-free guidance."""
        if call.x is None or call.t is None or call.x.dim() < 2:
            return
        rows = call.x.shape[0] if call.mode == "sampling" else min(call.x.shape[0], ROWS_PER_TRAIN_CALL)
        times = call.t.reshape(-1)
        if times.numel() == 1:
            times = times.expand(rows)
        elif times.numel() < rows:
            return
        if call.via is not None:
            self._through[call.model] = call.via
        store = self._train if call.mode == "train" else self._sampling
        if call.model in store and store[call.model].sample_shape != tuple(call.x.shape[1:]):
            return  # rows of another shape than the network's first calls': not comparable with them
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

    def _measure(self) -> InputsComparison | None:
        """The comparison for the first network with both training and sampling inputs (None before there is
        one), cached on the rows seen so far."""
        names = [n for n in self._train
                 if n in self._sampling and self._train[n].sample_shape == self._sampling[n].sample_shape]
        if not names:
            return None
        name = names[0]
        key = (name, self._train[name].seen, self._sampling[name].seen,
               *(None if r is None else r.seen for r in (self._data, self._source)))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, compare_inputs(name, self._train[name], self._sampling[name], self._data,
                                               self._source))
        return self._cache[1]

    def finish(self, ctx: Any) -> ProbeSection | None:
        comparison = self._measure()
        if comparison is None:
            return ProbeSection(title=TITLE, text=(
                "No comparison: it needs forward calls of a watched network with a time argument both in training "
                "and inside `with mon.sampling():`."))
        name, table, reference = comparison.model, comparison.table, comparison.reference
        train, sampling = self._train[name], self._sampling[name]
        gap = time_scale_gap(train.times, sampling.times, ctx.facts.get("schedule"))
        text = [f"Network `{name}`: {len(train)} training input rows (of {train.seen} recorded) and {len(sampling)} "
                f"sampling input rows, compared in {len(table)} bins of t by the energy distance (`p_value`: "
                f"permutation test, {PERMUTATIONS} relabellings)."]
        if name in self._through:
            text.append(f"Its sampling calls were made to `{self._through[name]}`, its EMA copy.")
        if gap is not None:
            text.append(gap.describe() + " The bins of t below mix the two scales.")
        guided = ctx.guidance.guided(ctx.facts)
        if guided is not None:
            text.append(f"Sampling is guided (known from {guided}): a guided sampler moves its state away from the "
                        "training inputs by design, so a gap between them is reported as info only.")
        if not reference:
            text.append("No data and source batches of the network's input size were observed "
                        "(`mon.observe_data(..., role=\"data\"/\"source\")`), so distances stay unscaled and no "
                        "finding is made.")
        else:
            text.append(f"Scale: the energy distance between the observed data and source batches is {reference:.4g}; "
                        "`ratio` is each bin's distance divided by it (0: same distribution; 1: as far apart as data "
                        "from noise). `progress_*` places each set's mean on the line from the source mean (0) to the "
                        "data mean (1).")
            change = comparison.t_change
            if change is not None:
                text.append(f"Training inputs of the lowest and the highest bin of t differ by {change['ratio']:.3g} "
                            "of the data–source distance (a path from source to data changes them by about 1).")
                ctx.log_scalar("inputs/train_change_over_t", change["ratio"])
            for _, row in table.dropna(subset=["ratio"]).iterrows():
                ctx.log_scalar(f"inputs/mismatch_t{row['t_low']:.2f}-{row['t_high']:.2f}", float(row["ratio"]))
            ctx.add_chart("inputs", "training vs sampling input mismatch by t", [r"inputs/mismatch_.*"])
        figure = ctx.draw_figure(FIGURE, train_vs_sampling, table, train, sampling, self._data,
                                 self._source, reference)
        return ProbeSection(title=TITLE, text=" ".join(text), figures=[figure], table=table.round(4).set_index("bin"))

    def findings(self, ctx: Any) -> list[Finding]:
        comparison = self._measure()
        if comparison is None:
            return []
        figure = f"figures/{FIGURE}.png"
        name = comparison.model
        gap = time_scale_gap(self._train[name].times, self._sampling[name].times, ctx.facts.get("schedule"))
        if gap is not None:  # every per-bin comparison would mix two scales of t: this is the finding instead
            found = [time_scale_finding(name, gap, ctx.task, figure)]
        else:
            found = inputs_findings(comparison, ctx.task, figure, guided=ctx.guidance.guided(ctx.facts))
        via = self._through.get(name)
        for finding in found if via is not None else []:
            finding.message = (f"The sampling calls were made to `{via}`, the EMA copy of `{name}`, and are compared "
                               f"with `{name}`'s training calls. " + finding.message)
            finding.evidence["sampled_through"] = via
        return found

    def state(self) -> dict[str, Any]:
        comparison = self._cache[1] if self._cache is not None else None
        if comparison is None or not comparison.reference:
            return {}
        return {"model": comparison.model, "reference_distance": comparison.reference,
                "ratios": ratios(comparison.table), "bins": bins(comparison.table), "t_change": comparison.t_change}

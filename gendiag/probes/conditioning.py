"""Conditioning: do samples follow the condition they were asked for, and was guidance's null condition trained?

Reads the conditions the loop gives (`observe_data(x, cond=y)`, `observe_samples(x, cond=y)`) and those of the
watched network's calls (`watch(net, cond_arg=2)` or `inputs` returning (x, t, cond)):
- `conditioning-ignored`: samples land in the class asked for hardly more often than chance, against how often the
  data's own rows land in theirs (nearest neighbours among the data kept per class, or the `classifier` fact).
- `null-label-untrained`: guided sampling (`guidance=` fact, pairs of calls on one state, or null-condition calls)
  calls the network with a null condition (`null_cond=` fact, None, an all-zero one-hot row, or the condition
  constant in every guided pair) that no recorded training row carried.

Each is shown by a figure of `gendiag.figures.conditioning`, drawn at finish only where the finding holds.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from gendiag.findings import Finding
from gendiag.flow.projection import principal_plane
from gendiag.probes import register
from gendiag.probes.base import TASKS, ForwardCall, Probe
from gendiag.quantities.conditioning import Agreement, ConditionedData, LabelCounts, class_labels, label_keys, \
    measure_agreement
from gendiag.report.section import ProbeSection
from gendiag.rules.conditioning import conditioning_ignored, null_label_untrained

TITLE = "Conditioning"
AGREEMENT_FIGURE = "conditioning_agreement"


@register
class ConditioningProbe(Probe):
    """Agreement of samples with their conditions; the null condition of guided sampling in training."""

    name = "conditioning"
    tasks = TASKS

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self._store = ConditionedData()
        self._counts: dict[str, LabelCounts] = {}
        self._cache: tuple[int, Agreement | None] | None = None

    def setup(self, ctx: Any) -> None:
        self.wants_forward = ctx.task in ("flow", "diffusion")  # the tasks guided sampling belongs to
        self._guidance = ctx.guidance  # the run's, fed by the Monitor with every sampling call

    def on_forward(self, ctx: Any, call: ForwardCall) -> None:
        if not call.conditioned or call.x is None or call.x.dim() == 0:
            return
        self._counts.setdefault(call.model, LabelCounts()).add(call.mode, label_keys(call.cond, len(call.x)))

    def on_conditions(self, ctx: Any, batch: torch.Tensor, cond: torch.Tensor, kind: str) -> None:
        labels = class_labels(cond)
        if labels is None:
            self._store.unreadable += 1
        elif kind == "data":
            self._store.add_data(batch, labels)
        else:
            self._store.add_samples(batch, labels, ctx.step)

    def _agreement(self, ctx: Any) -> Agreement | None:
        if self._cache is None or self._cache[0] != self._store.seen:
            self._cache = (self._store.seen, measure_agreement(self._store, ctx.facts.get("classifier")))
        return self._cache[1]

    def _nulls(self, ctx: Any) -> list[tuple[str, Any, str]]:
        """(network, null condition, how it is known) for each network with conditioned sampling calls."""
        found = ctx.guidance.null(ctx.facts, set(self._store.rows) or None)
        if found is None:
            return []
        return [(model, *found) for model, counts in self._counts.items() if counts.sampling]

    def finish(self, ctx: Any) -> ProbeSection | None:
        agreement = self._agreement(ctx)
        text = []
        if agreement is None:
            text.append("No agreement measured: it needs data and samples with their class labels "
                        "(`observe_data(x, cond=y)`, `observe_samples(x, cond=y)`), two classes or more.")
        else:
            score = agreement.score
            text.append(f"{agreement.samples} samples over {agreement.classes} classes ({agreement.method}): "
                        f"{agreement.sample_rate:.1%} land in the class asked for; the data's own rows "
                        f"{agreement.data_rate:.1%}; chance {agreement.chance:.1%}"
                        + ("." if score is None else f"; score {score:.2f} (1: as the data, 0: chance)."))
            ctx.log_scalar("conditioning/agreement", agreement.sample_rate)
        if self._store.unreadable:
            text.append(f"{self._store.unreadable} batch(es) had conditions that are not class labels (B,) or one-hot "
                        "rows (B, K): not measured.")
        guided = ctx.guidance.guided(ctx.facts)
        if guided is not None:
            text.append(f"Guided sampling, known from {guided}.")
        for model, null, how in self._nulls(ctx):
            counts = self._counts[model]
            text.append(f"`{model}`: null condition {null} (from {how}) on {counts.train[null]} of "
                        f"{sum(counts.train.values())} recorded training rows and {counts.sampling[null]} of "
                        f"{sum(counts.sampling.values())} sampling rows.")
        if agreement is None and not self._counts:
            return None
        table = None
        if agreement is not None:
            import pandas as pd

            table = pd.DataFrame([{"class": k, **v} for k, v in sorted(agreement.per_class.items())]).set_index("class")
        return ProbeSection(title=TITLE, text=" ".join(text), table=table, figures=self._draw(ctx, agreement))

    def _draw(self, ctx: Any, agreement: Agreement | None) -> list[str]:
        """The figures of the findings that hold now (none on a healthy run: it pays nothing for them)."""
        ignored = conditioning_ignored(agreement)
        untrained = [(model, null) for model, null, how in self._nulls(ctx)
                     if null_label_untrained(model, self._counts[model], null, how)]
        if not ignored and not untrained:
            return []
        from gendiag.figures.conditioning import AGREEMENT_CAPTION, NULL_CAPTION, agreement_figure, null_label_figure

        figures = []
        if ignored:
            figures.append(ctx.draw_figure(AGREEMENT_FIGURE, agreement_figure, agreement, *_on_plane(self._store),
                                           caption=AGREEMENT_CAPTION))
        for model, null in untrained:
            counts = self._counts[model]
            figures.append(ctx.draw_figure(_null_figure(model), null_label_figure, model, _shown(counts.train),
                                           _shown(counts.sampling), str(null), caption=NULL_CAPTION))
        return figures

    def findings(self, ctx: Any) -> list[Finding]:
        found = conditioning_ignored(self._agreement(ctx), f"figures/{AGREEMENT_FIGURE}.png")
        for model, null, how in self._nulls(ctx):
            found += null_label_untrained(model, self._counts[model], null, how, f"figures/{_null_figure(model)}.png")
        return found

    def state(self) -> dict[str, Any]:
        agreement = self._cache[1] if self._cache is not None else None
        state: dict[str, Any] = {}
        if agreement is not None:
            state.update(agreement=agreement.sample_rate, data_agreement=agreement.data_rate, chance=agreement.chance,
                         score=agreement.score)
        state["null_pairs"] = self._guidance.pairs
        return state


def _null_figure(model: str) -> str:
    """The name of a network's null-condition figure (its name kept to letters, digits, '-', '_' and '.')."""
    return "conditioning_null_" + re.sub(r"[^A-Za-z0-9_.-]", "_", model)


def _shown(counts: Any) -> dict[str, int]:
    """Rows per condition key, the keys as the figure names them."""
    return {str(key): int(rows) for key, rows in counts.items()}


def _on_plane(store: ConditionedData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, str]]:
    """The kept data rows and labelled samples on one plane, with their labels and the plane's axis names: the data
    space where 2-D, its first two principal axes where wider; 1-D values against their label."""
    rows, labels = store.data()
    samples = torch.cat(store.samples).flatten(1).double() if store.samples else rows.flatten(1)[:0].double()
    asked = torch.cat(store.sample_labels) if store.samples else labels[:0]
    rows = rows.flatten(1).double()
    if rows.shape[1] == 1:
        data_xy = torch.cat([rows, labels[:, None].double()], 1)
        samples_xy = torch.cat([samples, asked[:, None].double()], 1)
        names = ("x", "class")
    else:
        plane = principal_plane(rows)
        data_xy, samples_xy, names = plane.project(rows), plane.project(samples), plane.axis_labels()
    return data_xy.numpy(), labels.numpy(), samples_xy.numpy(), asked.numpy(), names

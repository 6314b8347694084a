"""Data representation: is a sample of the training data one draw from the distribution, and is the source batch
the noise the model is meant to start from?

Per observed batch it keeps at most 64 rows of the first batch and of every k-th after it (eight batches per role
at most; k doubles when full, so the sample spans the whole run). Everything else runs on those rows whenever the
rules are asked after new batches (each live check, and `finish`, which logs each measurement's data/* scalars at
its step), through the pure checks in `gendiag.quantities.representation` and `gendiag.quantities.source` (run by
`gendiag.quantities.data_repr.measure`; the rules are in `gendiag.rules.data_repr`). The fact
`image_shape=(C, H, W)` says how a sample reads as an image; without it a square D is read as a square one-channel
image.

Findings:
- `data-near-duplicates` (critical when at most a tenth of the compared samples are distinct, else warning): at
  most half the data samples are distinct (samples of >= 16 values that differ by at most a quarter of a sample's
  own spread; samples of fewer values only when equal).
- `rendered-point-cloud` (critical): data or source samples are pictures of one whole 2D point cloud: the same
  pixel mass in the same place in every image, images near-duplicates of one another.
- `source-sampler-mismatch` (critical): sampling starts from another distribution than the source batches seen in
  training. The sampler's first inputs are the rows of the first forward call of a watched network in each sampling
  run (flow and diffusion tasks; a run begins at the first call inside `with mon.sampling():` after training calls
  or at a new step, and every later call at that first call's time starts the sampler again); the declared source
  (fact `source=callable(n)` or a batch) is compared too. Energy distance, permutation test, see
  `gendiag.quantities.source`.
- `source-not-noise`: the source batch is not N(0, I). Critical when it looks like a rendered picture or its samples
  are copies of one another (no source is that on purpose); otherwise a warning, and only where gendiag cannot
  tell whether the sampler starts from the same distribution (no sampling calls, no declared source).
- `source-chosen` (info): the source is not N(0, I) but the sampler starts from it: a chosen distribution (eight
  Gaussians, say), which flow matching transports as well as noise; the velocity probe uses the observed rows.
- `data-scale-mismatch` (warning): the data's RMS value is over 5 times, or under a tenth of, the source's (of
  N(0, I) for flow and diffusion when no source batch was observed). Images in [0, 1] have an RMS of 0.2-0.5.
- `data-binary-pixels` (warning; info for VAEs and where the fact `likelihood="bernoulli"` says binary data is
  expected): at least 99% of the values of samples of >= 16 values sit at the minimum or the maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from gendiag.context import ProbeContext
from gendiag.figures.data_repr import samples, source_qq, sources, values
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import TASKS, ForwardCall, Probe
from gendiag.report.section import ProbeSection
from gendiag.quantities.data_repr import (
    DECLARED_VALUES, SAMPLED_TASKS, BatchSample, Representation, comparison_numbers, measure, role_numbers,
)
from gendiag.quantities.source import declared_rows
from gendiag.rules.data_repr import representation_findings

FIGURES = {"samples": "data_repr_samples", "values": "data_repr_values", "qq": "data_repr_source_qq",
           "sources": "data_repr_source_vs_sampler"}


@register
class DataRepresentationProbe(Probe):
    """Point cloud or flattened image? Near-duplicates, pixel values, scale, and whether the source is noise."""

    name = "data_repr"
    tasks = tuple(task for task in TASKS if task != "autoregressive")  # its checks are for continuous models

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.kept = {"data": BatchSample(seed=1), "source": BatchSample(seed=2)}
        self.batch_size: dict[str, int] = {}
        self.starts = BatchSample()
        self._runs: dict[str, tuple[int, float | None]] = {}  # model -> (step, first time) of its sampling run
        self._cache: tuple[tuple[Any, ...], Representation | None] | None = None
        self._over_time: dict[int, dict[str, float]] = {}  # step -> the data/* scalars measured there

    def setup(self, ctx: ProbeContext) -> None:
        self.wants_forward = ctx.task in SAMPLED_TASKS

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        self.batch_size.setdefault(role, int(batch.shape[0]))
        self.kept[role].offer(batch, role)

    def on_forward(self, ctx: ProbeContext, call: ForwardCall) -> None:
        """Keep the inputs of the first call of each sampling run (and of later calls at its time: the sampler
        started again); a training call ends a run."""
        if call.mode != "sampling":
            self._runs.pop(call.model, None)
            return
        at = None if call.t is None or call.t.numel() == 0 else float(call.t.reshape(-1)[0])
        run = self._runs.get(call.model)
        if run is None or run[0] != call.step:
            self._runs[call.model] = (call.step, at)
        elif at is None or run[1] is None or at != run[1]:
            return
        x = call.x
        if x is None or x.dim() < 2 or x.shape[0] == 0:
            return
        if self.starts.batches and x.shape[1:] != self.starts.batches[0].shape[1:]:
            return  # another watched network's inputs: the first network's are kept
        self.starts.offer(x, "sampler start")

    def _measure(self, ctx: ProbeContext) -> Representation | None:
        """Every check on the rows kept so far (None before any batch), cached on the batches offered."""
        key = (self.kept["data"].offered, self.kept["source"].offered, self.starts.offered)
        if self._cache is None or self._cache[0] != key:
            rows = {role: kept.rows_kept() for role, kept in self.kept.items() if kept.batches}
            summary = None
            if rows:
                summary = measure(rows, self.batch_size, {role: len(self.kept[role].batches) for role in rows},
                                  self._other_sources(ctx) if "source" in rows else {},
                                  ctx.facts.get("image_shape"), ctx.task)
                self._over_time[ctx.step] = scalars(summary)
            self._cache = (key, summary)
        return self._cache[1]

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        summary = self._measure(ctx)
        if summary is None:
            return None
        for step, numbers in sorted(self._over_time.items()):
            for tag, value in numbers.items():
                ctx.log_scalar(tag, value, step)
        image_shape = ctx.facts.get("image_shape")
        drawn = [ctx.draw_figure(FIGURES["samples"], samples, summary, image_shape),
                 ctx.draw_figure(FIGURES["values"], values, summary)]
        if "source" in summary.rows:
            drawn.append(ctx.draw_figure(FIGURES["qq"], source_qq, summary.rows["source"]))
        if "source" in summary.rows and summary.matches:
            drawn.append(ctx.draw_figure(FIGURES["sources"], sources, summary.rows["source"], summary.others))
        text = _text(summary) + "\n" + over_time(sorted(self._over_time))
        return ProbeSection(title="Data representation", text=text, figures=drawn, table=_table(summary))

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        summary = self._measure(ctx)
        if summary is None:
            return []
        binary_expected = ctx.task == "vae" or ctx.facts.get("likelihood") == "bernoulli"
        return representation_findings(summary, _figure_paths(summary), binary_expected)

    def state(self) -> dict[str, Any]:
        summary = self._cache[1] if self._cache is not None else None
        if summary is None:
            return {}
        numbers: dict[str, Any] = {role: role_numbers(checks) for role, checks in summary.checks.items()}
        if summary.scale is not None:
            numbers["scale_ratio"] = summary.scale.ratio
        for label, comparison in summary.matches.items():
            numbers[f"source_vs_{label}"] = comparison_numbers(comparison)
        return numbers

    def _other_sources(self, ctx: ProbeContext) -> dict[str, torch.Tensor]:
        """What sampling starts from: the sampler's first inputs, and rows of the declared source (called once
        source batches were observed). A start batch reused at every checkpoint (fixed noise to watch progress by)
        counts once: repeated rows would make one distribution look like another."""
        others = {}
        if self.starts.batches:
            starts = self.starts.rows_kept()
            others["sampler"] = torch.unique(starts.reshape(starts.shape[0], -1), dim=0)
        declared = ctx.facts.get("source")
        if declared is not None:
            width = self.kept["source"].batches[0][0].numel()
            others["declared"] = declared_rows(declared, max(16, min(256, DECLARED_VALUES // width)))
        return others


def scalars(summary: Representation) -> dict[str, float]:
    """The data/* scalars of one measurement on the rows kept so far, by tag (finite values only)."""
    values: dict[str, float] = {}
    for role, checks in summary.checks.items():
        prefix = "data/" if role == "data" else "data/source_"
        numbers = {"distinct_fraction": checks.render.duplicates.distinct_fraction,
                   "spread_ratio": checks.spread.ratio, "rms": checks.values.rms}
        if checks.noise is not None:
            numbers.update(ks=checks.noise.ks_statistic, mean=checks.noise.mean, std=checks.noise.std)
        values.update({f"{prefix}{key}": float(value) for key, value in numbers.items() if np.isfinite(value)})
    if summary.scale is not None and np.isfinite(summary.scale.ratio):
        values["data/scale_ratio"] = float(summary.scale.ratio)
    return values


def over_time(steps: list[int]) -> str:
    """Where TensorBoard's data/* points come from: the checks run on the rows kept so far whenever the rules are
    asked after new batches came (each live check, and the end), one point per measurement."""
    if len(steps) == 1:
        return (f"- **in TensorBoard**: the data/* scalars hold one point, at step {steps[0]}: the checks ran once, at "
                "the end, on the rows kept over the run (with live checks on, they also run at each check that "
                "follows new batches, one point each).")
    shown = ", ".join(map(str, steps[:12])) + (f", … ({len(steps)} in all)" if len(steps) > 12 else "")
    return (f"- **in TensorBoard**: the data/* scalars hold one point per measurement on the rows kept so far, at "
            f"the live checks that followed new batches and at the end: steps {shown}.")


def _figure_paths(summary: Representation) -> dict[str, str]:
    """The figures `finish` draws for this summary, by name, as paths in the run folder."""
    names = ["samples", "values"]
    if "source" in summary.rows:
        names.append("qq")
        if summary.matches:
            names.append("sources")
    return {name: f"figures/{FIGURES[name]}.png" for name in names}


def _text(summary: Representation) -> str:
    lines = []
    for role, checks in summary.checks.items():
        dup = checks.render.duplicates
        lines.append(f"- **{role}**: {checks.batches} batches kept, batch size {checks.batch_size}, "
                     f"{checks.spread.dimension} values per sample; about {dup.effective_distinct:.1f} distinct "
                     f"samples in {dup.samples}; values in [{checks.values.minimum:.4g}, "
                     f"{checks.values.maximum:.4g}], {checks.values.distinct} distinct.")
    if summary.scale is not None:
        lines.append(f"- **scale**: data RMS {summary.scale.data_rms:.4g} against {summary.scale.reference_rms:.4g} "
                     f"for the {summary.scale.reference} (ratio {summary.scale.ratio:.3g}).")
    for label, c in summary.matches.items():
        what = "sampler's first inputs" if label == "sampler" else "declared source"
        lines.append(f"- **training source against the {what}**: energy distance {c.energy:.3g}, permutation "
                     f"p = {c.p_value:.3g}, energy coefficient {c.coefficient:.3f} over {c.rows_a} and {c.rows_b} "
                     f"rows: {'different distributions' if c.differs else 'no material difference'}.")
    return "\n".join(lines)


def _table(summary: Representation) -> pd.DataFrame:
    frame = pd.DataFrame({role: role_numbers(checks) for role, checks in summary.checks.items()})
    frame.index.name = "measure"
    return frame

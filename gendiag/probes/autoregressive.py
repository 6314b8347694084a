"""Autoregressive models (PixelCNN, a GRU or transformer over tokens): is each value predicted only from the values
before it, and does the sampler draw?

The loop reports the loss of every position, `mon.step(step, loss, per_position_loss=nll)` with `nll` of shape
(B, ...) in nats (`F.cross_entropy(..., reduction="none")`, `F.binary_cross_entropy_with_logits(...,
reduction="none")`), and watches the network with `t_arg=None`. From the recorded training calls the probe keeps the
latest rows of the network's inputs and, on steps 1, 2, 4, 8, ... and at the end, runs the network itself on them
and on copies whose later inputs change (`gendiag.quantities.autoregressive.dependence`): a causal network's output
for position i does not move when only inputs from i on change. Whether the output at i predicts input i (PixelCNN)
or input i + 1 (a language model) is read from what the network learned (`TargetOffset`). The sampler's inputs and
the observed samples are compared with the values training uses.

Findings (`gendiag.rules.autoregressive`):
- `causal-leak` (critical): the output predicting a value moves when only that value or later ones change (a
  first masked convolution of type B, targets not shifted by one, attention without a causal mask), or the loss is
  below half of the data's entropy given as the fact `entropy`.
- `train-sample-input-mismatch` (critical): the samples, or the sampler's last inputs of a run, hold values off
  the levels of the training values (probabilities written back instead of draws).
- `ar-samples-identical` (critical when all are one, else warning): far fewer distinct samples than data rows.
The figures are `gendiag.figures.autoregressive`; those of the last two findings are drawn only where they hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.figures.autoregressive import (
    CAUSAL_CAPTION, DISTINCT_CAPTION, INPUTS_CAPTION, LOSS_CAPTION, causal_check, distinct_samples, loss_by_position,
    sampler_values, summary_text,
)
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import ForwardCall, Probe, ProbeSection, StepRecord, not_run
from gendiag.quantities.autoregressive import (
    Dependence, NetworkCheck, PositionLoss, Summary, TargetOffset, ValueCounts, by_position, dependence,
    distinct_rows, layout, off_level_share, top_shares,
)
from gendiag.rules.autoregressive import (
    MIN_SAMPLED_POSITIONS, autoregressive_findings, sample_inputs, samples_identical,
)
from gendiag.rules.thresholds import AR_LEVEL_TOLERANCE

KEPT_ROWS = 1024  # data rows and samples kept to count distinct ones
FIGURES = {"loss": "autoregressive_loss_by_position", "causal": "autoregressive_causal_check",
           "inputs": "autoregressive_sampler_values", "distinct": "autoregressive_distinct_samples"}


@register
class AutoregressiveProbe(Probe):
    """Loss by position against the entropy, the causal check of the watched network, the sampler's values."""

    name = "autoregressive"
    tasks = ("autoregressive",)
    wants_forward = True

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.loss = PositionLoss()
        self.data = ValueCounts()
        self.data_rows: list[torch.Tensor] = []
        self.training_values = ValueCounts(per_position=False)
        self.rows: dict[str, tuple[torch.Tensor, str]] = {}  # model -> latest training input rows, their layout
        self.timed: dict[str, bool] = {}  # model -> whether its training calls carried a time
        self.offsets: dict[str, TargetOffset] = {}
        self.checks: dict[str, list[Dependence]] = {}
        self.next_check: dict[str, int] = {}
        self.not_run: dict[str, str] = {}
        self.pending: dict[str, tuple[torch.Tensor, str]] = {}  # model -> its latest input in the open sampling run
        self.sampling_off_level: list[float] = []
        self.sampling_positions = 0
        self.samples: dict[str, Any] = {}
        self.sample_rows: torch.Tensor | None = None  # the latest observed samples (at most KEPT_ROWS, on the host)
        self.sampler_input: torch.Tensor | None = None  # the last input of the latest judged sampling run (host)
        self.figures: dict[str, str] = {}

    # -- gathering ------------------------------------------------------------------------------------

    def on_forward(self, ctx: ProbeContext, call: ForwardCall) -> None:
        if call.x is None or call.output is None or call.x.dim() < 2 or call.x.shape[0] == 0:
            return
        x, output = call.x.cpu(), call.output.cpu()  # this probe reads each call on the host (not sync-free yet)
        kind = layout(x, output)
        if kind is None:
            return
        if call.mode == "train":
            self._close_sampling_runs()
            self.rows[call.model] = (x, kind)
            self.timed[call.model] = call.t is not None
            self.offsets.setdefault(call.model, TargetOffset()).add(x, output, kind)
            self.training_values.add(x)
        else:
            self.pending[call.model] = (x, kind)

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        per_position = record.tensors.get("per_position_loss")
        if per_position is not None:
            self.loss.add(per_position)
        elif record.loss is not None and ctx.facts.get("entropy") is not None:
            self.loss.add(torch.tensor([record.loss]))
        for model in self.rows:
            if record.step >= self.next_check.get(model, 0):
                self._check(ctx, model, record.step)
                self.next_check[model] = max(2 * record.step, record.step + 1)

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        if role != "data":
            return
        self.data.add(batch)
        if sum(len(rows) for rows in self.data_rows) < KEPT_ROWS:
            self.data_rows.append(batch[:KEPT_ROWS].detach().to("cpu", copy=True))

    def on_samples(self, ctx: ProbeContext, samples: torch.Tensor, step: int) -> None:
        self._close_sampling_runs()
        rows = samples[:KEPT_ROWS].detach().cpu()
        levels = self.data.levels()
        data = self._data_rows(len(rows))
        self.sample_rows = rows
        self.samples = {
            "count": len(rows), "distinct": distinct_rows(rows),
            "data_distinct": distinct_rows(data) if data is not None else None,
            "data_compared": len(data) if data is not None else 0,
            "off_level": (off_level_share(rows, levels, AR_LEVEL_TOLERANCE)
                          if levels is not None and rows.is_floating_point() else None),
        }

    def _data_rows(self, count: int) -> torch.Tensor | None:
        """The first `count` kept data rows, flattened (None before any data)."""
        return torch.cat([r.reshape(len(r), -1) for r in self.data_rows])[:count] if self.data_rows else None

    def _close_sampling_runs(self) -> None:
        """A sampling run ends (a training call, observed samples, the end): judge the last inputs it fed."""
        levels = self.training_values.levels()
        for x, kind in self.pending.values():
            if levels is not None and kind != "tokens":
                self.sampling_off_level.append(off_level_share(x, levels, AR_LEVEL_TOLERANCE))
                self.sampling_positions = int(by_position(x, kind).shape[1])
                self.sampler_input = x
        self.pending.clear()

    def _check(self, ctx: ProbeContext, model: str, step: int) -> None:
        reason = ctx.cannot_evaluate(model)
        if reason is None and ctx.models[model].t_arg is not None and not self.timed.get(model):
            reason = (f"network {model!r} was watched with t_arg={ctx.models[model].t_arg!r} but its calls carry no "
                      "time; watch an autoregressive network with t_arg=None")
        if reason is not None:
            self.not_run[model] = reason
            return
        x, kind = self.rows[model]
        x = x.round().long() if kind == "tokens" else x
        self.checks.setdefault(model, []).append(
            dependence(lambda rows: ctx.evaluate(model, rows), x, kind, step))

    # -- results --------------------------------------------------------------------------------------

    def summary(self, ctx: ProbeContext) -> Summary:
        """What the rules read, from what has been gathered so far (no computation beyond means)."""
        entropy = ctx.facts.get("entropy")
        levels = self.training_values.levels()
        return Summary(
            loss=self.loss.recent(), loss_steps=self.loss.steps,
            entropy=None if entropy is None else np.asarray(torch.as_tensor(entropy, dtype=torch.float64)),
            networks=[NetworkCheck(model, kind, self.checks.get(model, []), self.offsets[model].means())
                      for model, (_, kind) in self.rows.items() if model not in self.not_run],
            levels=None if levels is None else [float(v) for v in levels],
            sampling_off_level=list(self.sampling_off_level), sampling_positions=self.sampling_positions,
            samples_off_level=self.samples.get("off_level"), samples=self.samples.get("count", 0),
            samples_distinct=self.samples.get("distinct", 0), data_distinct=self.samples.get("data_distinct"),
            data_compared=self.samples.get("data_compared", 0),
        )

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        self._close_sampling_runs()
        for model in self.rows:
            done = self.checks.get(model)
            if model not in self.not_run and (not done or done[-1].step != ctx.step):
                self._check(ctx, model, ctx.step)
        summary = self.summary(ctx)
        recent = summary.loss
        marginal = self._marginal(recent)
        if recent is not None:
            self.figures["loss"] = ctx.draw_figure(
                FIGURES["loss"], loss_by_position, recent, self.loss.early(), marginal, summary.entropy,
                caption=LOSS_CAPTION)
            ctx.log_scalar("autoregressive/loss_per_position", float(np.mean(recent)))
        if any(check.checks for check in summary.networks):
            self.figures["causal"] = ctx.draw_figure(FIGURES["causal"], causal_check, summary.networks,
                                                     caption=CAUSAL_CAPTION)
        self._draw_sampler_figures(ctx, summary)
        if recent is None and not summary.networks:
            return None
        return ProbeSection(title="Autoregressive", text=summary_text(summary.networks, self.loss.steps, recent,
                                                                      marginal),
                            figures=list(self.figures.values()))

    def _draw_sampler_figures(self, ctx: ProbeContext, summary: Summary) -> None:
        """The figures of `train-sample-input-mismatch` and `ar-samples-identical`, each drawn only where its finding
        holds (a healthy run draws neither)."""
        if sample_inputs(summary) is not None:
            levels = self.training_values.levels()
            counts = np.array([self.training_values.counts[level][0] for level in levels])
            runs = summary.sampling_off_level if summary.sampling_positions >= MIN_SAMPLED_POSITIONS else []
            self.figures["inputs"] = ctx.draw_figure(
                FIGURES["inputs"], sampler_values, levels, counts, _finite_values(self.sampler_input),
                _finite_values(self.sample_rows), runs, summary.samples_off_level, caption=INPUTS_CAPTION)
        if samples_identical(summary) is not None:
            data = self._data_rows(summary.data_compared)
            self.figures["distinct"] = ctx.draw_figure(
                FIGURES["distinct"], distinct_samples, summary.samples, summary.samples_distinct,
                summary.data_compared, summary.data_distinct, top_shares(self.sample_rows), top_shares(data),
                caption=DISTINCT_CAPTION)

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        figures = {key: f"figures/{name}.png" for key, name in FIGURES.items()}
        found = autoregressive_findings(self.summary(ctx), figures)
        for reason in self.not_run.values():
            finding = not_run(self.name, reason)
            if "t_arg=None" in reason:
                finding.suggestion = "Watch the network with mon.watch(model, t_arg=None)."
            found.append(finding)
        return found

    def state(self) -> dict[str, Any]:
        recent = self.loss.recent()
        return {"loss_per_position": None if recent is None else float(np.mean(recent)),
                "checks": {model: len(checks) for model, checks in self.checks.items()},
                "sampling_off_level": self.sampling_off_level[-8:], **{f"samples_{k}": v
                                                                       for k, v in self.samples.items()}}

    def _marginal(self, recent: np.ndarray | None) -> np.ndarray | None:
        """The entropy of each position's value alone, aligned with the loss positions: the same positions, or the
        data's from the second on where the data holds one more (the first token is given, not predicted)."""
        marginal = self.data.entropy()
        if marginal is None or recent is None:
            return None
        if len(marginal) == len(recent) + 1:
            return marginal[1:]
        return marginal if len(marginal) == len(recent) else None


def _finite_values(values: torch.Tensor | None) -> np.ndarray:
    """The finite values of a kept host tensor as one flat array (empty for None)."""
    if values is None:
        return np.empty(0)
    flat = values.double().reshape(-1).numpy()
    return flat[np.isfinite(flat)]

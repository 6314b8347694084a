"""Mode collapse: which known modes (or classes) the generator covers, observation by observation.

Facts it reads: `modes=centers` (K, D) with `mode_std=s` (one number or one per mode) for data with known modes,
and/or `classifier=fn` (images -> class labels, or class scores) with `n_classes` (or a classifier that has an
`n_classes` attribute, as `gendiag.metrics.classifier.DigitClassifier` does). Without either it stays silent.

On every `observe_samples` it computes PacGAN's known-mode metrics (`gendiag.metrics.modes`) and/or the class
coverage (`gendiag.metrics.classes`) and adds it to a timeline (`gendiag.quantities.modes`); the rule is
`gendiag.rules.modes`, the figure `gendiag.figures.modes`.

Finding `mode-collapse`: at the last observation some modes (classes) have no high-quality sample (no sample),
with enough samples that a generator covering all of them evenly would miss one with probability below 1%, or
the reverse KL of the histogram against uniform is above 0.2 nats and too large to be sampling noise (the G-test:
2 n KL against the 99% quantile of chi-squared with K - 1 degrees of freedom, n the histogram's samples).
The finding lists the dropped modes and the step since which each has been missing; with every mode covered it
is titled an imbalance, not a collapse.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.findings import Finding
from gendiag.metrics.classes import class_coverage
from gendiag.metrics.modes import HIGH_QUALITY_STDS, mode_metrics
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection
from gendiag.quantities.modes import CoverageTimeline, Observation
from gendiag.rows import RowPicker, take_rows
from gendiag.rules.modes import fmt_kl, mode_collapse

KEEP_SAMPLES = 2500  # samples of the last observation kept for the figure
FIGURE = "mode_collapse"


@register
class ModeCollapseProbe(Probe):
    """Modes (or classes) captured over training, high-quality share, reverse KL; `mode-collapse`."""

    name = "mode-collapse"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.centers: np.ndarray | None = None
        self.stds: np.ndarray | None = None
        self.classifier: Any = None
        self.modes: CoverageTimeline | None = None
        self.classes: CoverageTimeline | None = None
        self.last_samples: torch.Tensor | None = None
        self.last_labels: np.ndarray | None = None
        self.picker = RowPicker(seed=0)

    def setup(self, ctx: ProbeContext) -> None:
        facts = ctx.facts  # checked by gendiag.facts when the Monitor was built
        if facts.get("modes") is not None:
            centers = np.asarray(torch.as_tensor(facts["modes"]).detach().cpu(), dtype=np.float64)
            stds = np.asarray(facts["mode_std"], dtype=np.float64)
            self.centers = centers
            self.stds = np.full(len(centers), float(stds)) if stds.ndim == 0 else stds
            self.modes = CoverageTimeline("mode", len(centers))
            ctx.add_chart("modes", "modes captured and reverse KL",
                          ["modes/captured", "modes/high_quality_share", "modes/reverse_kl"])
        if facts.get("classifier") is not None:
            self.classifier = facts["classifier"]
            self.classes = CoverageTimeline("class", int(facts.get("n_classes") or self.classifier.n_classes))
            ctx.add_chart("classes", "classes found and balance",
                          ["classes/found", "classes/largest_share", "classes/kl_uniform"])

    def on_samples(self, ctx: ProbeContext, samples: torch.Tensor, step: int) -> None:
        if self.modes is None and self.classes is None:
            return
        shown = self.picker.indices(len(samples), KEEP_SAMPLES)  # at random: a sampler may return modes in order
        self.last_samples = take_rows(samples.detach(), shown).float().cpu()
        if self.modes is not None:
            flat = samples.detach().float().cpu().reshape(len(samples), -1)
            metrics = mode_metrics(flat, self.centers, self.stds)
            self.modes.add(Observation(step, len(samples), metrics, metrics.high_quality_share))
            _log(ctx, step, {"modes/captured": metrics.n_covered, "modes/high_quality_share":
                             metrics.high_quality_share, "modes/reverse_kl": metrics.kl_to_uniform})
        if self.classes is not None:
            labels = self._labels(samples)
            coverage = class_coverage(labels, self.classes.n_units)
            self.last_labels = labels if shown is None else labels[shown.numpy()]
            self.classes.add(Observation(step, len(samples), coverage))
            _log(ctx, step, {"classes/found": coverage.n_covered, "classes/largest_share": coverage.largest_share,
                             "classes/kl_uniform": coverage.kl_to_uniform})

    def _labels(self, samples: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            output = torch.as_tensor(self.classifier(samples.detach())).detach().cpu()
        if output.dim() == 2:
            output = output.argmax(dim=1)
        if output.shape != (len(samples),) or output.is_floating_point():
            raise ValueError(f"mode-collapse: classifier must return integer labels (N,) or scores (N, C), got "
                             f"dtype {output.dtype} and shape {tuple(output.shape)} for {len(samples)} samples")
        return output.numpy().astype(np.int64)

    def _timelines(self) -> list[CoverageTimeline]:
        return [t for t in (self.modes, self.classes) if t is not None and len(t)]

    # -- report -------------------------------------------------------------------------------------

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not self._timelines():
            return None
        from gendiag.figures.modes import CAPTION, coverage_figure

        figure = ctx.draw_figure(FIGURE, coverage_figure, self.modes, self.classes, self.last_samples, self.centers,
                                 self.stds, self.last_labels, caption=CAPTION)
        return ProbeSection(title="Mode collapse: modes and classes covered over training",
                            text="\n\n".join(map(_text, self._timelines())), figures=[figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        figure = f"figures/{FIGURE}.png"
        found = [mode_collapse(timeline, ctx.task, figure) for timeline in self._timelines()]
        return [f for f in found if f is not None]

    def state(self) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        if self.modes is not None and len(self.modes):
            last = self.modes.last
            summary.update({"modes_captured": last.coverage.n_covered, "n_modes": self.modes.n_units,
                            "high_quality_share": last.high_quality_share,
                            "reverse_kl": _plain(last.coverage.kl_to_uniform)})
        if self.classes is not None and len(self.classes):
            last = self.classes.last
            summary.update({"classes_found": last.coverage.n_covered, "n_classes": self.classes.n_units,
                            "largest_class_share": last.coverage.largest_share,
                            "class_kl_uniform": _plain(last.coverage.kl_to_uniform)})
        return summary


def _text(timeline: CoverageTimeline) -> str:
    last, n, coverage = timeline.last, timeline.n_units, timeline.last.coverage
    seen = (f"{len(timeline)} observations. At step {last.step} ({last.n_samples} samples): {coverage.n_covered} of "
            f"{n} ")
    if timeline.unit == "mode":
        return (f"Known modes: {n}; {seen}modes captured (a high-quality sample within {HIGH_QUALITY_STDS:g} std), "
                f"high-quality share {last.high_quality_share:.1%}, reverse KL(P_gen || uniform) of the high-quality "
                f"histogram {fmt_kl(coverage.kl_to_uniform)} nats (0: balanced; log K = {math.log(n):.2f}: one mode).")
    return (f"Classes (from the classifier): {n}; {seen}classes found, largest class share "
            f"{coverage.largest_share:.1%}, KL(P_gen || uniform) {fmt_kl(coverage.kl_to_uniform)} nats.")


def _log(ctx: ProbeContext, step: int, scalars: dict[str, float]) -> None:
    """Log the finite ones (the reverse KL is infinite when no sample is high-quality)."""
    for tag, value in scalars.items():
        if math.isfinite(value):
            ctx.log_scalar(tag, value, step)


def _plain(value: float) -> float | None:
    return value if math.isfinite(value) else None

"""Memorization: generated samples that are near-copies of training samples.

Facts it reads: `reference=data` (held-out real samples, never trained on). It keeps the training batches the
loop shows through `observe_data(role="data")` (distinct rows, up to a memory cap, by reservoir sampling with its
own generator) and the last `observe_samples` batch. At the end it compares each generated sample's distance to
its nearest training sample with the held-out samples' distances, relative to the training set's local spacing
(`gendiag.metrics.memorization`), and counts near-duplicate pairs among the generated samples against the same
count among as many held-out samples (the birthday-paradox test).

Finding `memorization`: at least 10% of the generated samples (and at least 5 times the share expected from a
generator that generalizes) are near-copies, and the Mann-Whitney z of the data-copying test is below -3.
Only training rows the probe saw can be found copied: the section says how many it saw.

The reservoir and the comparison are `gendiag.quantities.memorization`, the rule `gendiag.rules.memorization`, the
figure `gendiag.figures.memorization`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection
from gendiag.quantities.memorization import CopyWatch
from gendiag.rules.memorization import memorization_finding
from gendiag.rules.thresholds import MEM_COPY_QUANTILE, MEM_Z_COPYING

FIGURE = "memorization"


@register
class MemorizationProbe(Probe):
    """Nearest-training-sample distances of generated vs held-out samples, near-duplicates; `memorization`."""

    name = "memorization"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.watch: CopyWatch | None = None

    def setup(self, ctx: ProbeContext) -> None:
        reference = ctx.facts.get("reference")  # checked by gendiag.facts when the Monitor was built
        if reference is not None:
            self.watch = CopyWatch(reference)

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        if self.watch is not None and role == "data":
            self.watch.add_data(batch)

    def on_samples(self, ctx: ProbeContext, samples: torch.Tensor, step: int) -> None:
        if self.watch is not None:
            self.watch.add_samples(samples, step)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        watch = self.watch
        if watch is None:
            return None
        missing = watch.missing()
        if missing:
            return ProbeSection(title="Memorization", text=f"Not measured: no {' and no '.join(missing)} were seen.")
        from gendiag.figures.memorization import CAPTION, copies_figure

        copying = watch.copying(MEM_COPY_QUANTILE)
        figure = ctx.draw_figure(FIGURE, copies_figure, copying, watch.train.shape, caption=CAPTION)
        result, duplicates = copying.result, copying.duplicates
        text = (f"Compared {len(copying.generated)} generated samples (step {watch.samples_step}) and "
                f"{copying.n_heldout} held-out real samples with the {len(copying.train)} distinct training rows kept "
                f"of {watch.train.seen} seen. Median distance to the nearest training sample: generated "
                f"{np.median(result.generated_distance):.4g}, held-out {np.median(result.heldout_distance):.4g} "
                f"(ratio {result.median_distance_ratio:.3f}). Near-copies (closer, relative to the local spacing of "
                f"the training set, than {1 - MEM_COPY_QUANTILE:.0%} of held-out samples): {result.copy_share:.1%} "
                f"of generated samples (about {MEM_COPY_QUANTILE:.0%} expected); data-copying test z = "
                f"{result.mann_whitney_z:.2f} (below {MEM_Z_COPYING:g}: copying). Near-duplicate pairs at distance "
                f"below {duplicates['threshold']:.4g}: {duplicates['generated_pairs']} among generated, "
                f"{duplicates['heldout_pairs']} among {duplicates['n']} held-out samples.")
        return ProbeSection(title="Memorization: generated samples against the training set", text=text,
                            figures=[figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if self.watch is None:
            return []
        finding = memorization_finding(self.watch.copying(MEM_COPY_QUANTILE), self.watch.samples_step,
                                       self.watch.train.seen, ctx.task, f"figures/{FIGURE}.png")
        return [] if finding is None else [finding]

    def state(self) -> dict[str, Any]:
        copying = None if self.watch is None else self.watch.copying(MEM_COPY_QUANTILE)
        if copying is None:
            return {}
        result = copying.result
        return {"copy_share": result.copy_share, "mann_whitney_z": result.mann_whitney_z,
                "median_distance_ratio": result.median_distance_ratio, "training_rows_seen": self.watch.train.seen,
                "duplicate_pairs_generated": copying.duplicates.get("generated_pairs")}

"""Samples against the data the loop showed: generated samples that plainly do not look like the training data.

It needs no facts: the data batches seen through `observe_data(role="data")` are the reference. Per batch it only
offers the rows to a reservoir (uniform over all rows of all batches, at most 2,048 rows and 2^21 numbers, images
flattened, its own seeded generator: `gendiag.flow.reservoir`). On each `observe_samples` it logs the samples'
scale against the data's (`samples/std_ratio`, `samples/mean_offset`) and a picture of the samples beside the data
to TensorBoard (`samples/over_data`: image grids where a sample reads as an image, by its shape or the fact
`image_shape`, else a scatter over the data; on a thinning stride over the observations); at the end it compares the last samples with
the kept rows (`gendiag.metrics.samples_vs_data`): scale and mean offset; W2 in the data space (D <= 10) or in
the data's 10 leading principal components, against its floor (W2 between two disjoint data subsets of the
samples' size) and against a Gaussian with the data's mean and covariance; PRDC coverage against its floor.
The samples must reach `observe_samples` in the space of the observed data (same normalisation).

Finding `samples-unlike-data`. Critical: the samples' overall standard deviation (square root of the total
variance) is over 3 times or under a third of the data's; or their mean lies more than one data spread (RMS
distance of a data row to the data mean) from the data's; or W2 is over 5 times its floor and over 0.6 data
spreads. Warning: the same at 2 times / half, at half a spread, and (D <= 10 only) W2 over 4 times its floor and
0.5 spreads, or a coverage under 0.3 of its floor with W2 over 3 times its floor. Each limit is also held above
twice the data-vs-data deviation at the samples' size, so a handful of samples cannot fire it.

Margins (healthy but briefly trained models must stay silent). Healthy 2-D loops, tiny MLPs, 1,000 samples: a
DDPM (T = 100, betas 1e-4..0.2) and flow matching after 100, 300 and 1,000 steps on moons, a spiral and a
stretched Gaussian: std ratio 0.79-1.15, mean offset <= 0.16 spreads, W2 <= 4.0 times its floor and <= 0.40
spreads (the 100-step DDPM, barely trained), coverage >= 0.40 of its floor. tests/loops.py train_flow (300 and 100
steps): W2 2.9x / 1.9x its floor, 0.36 / 0.37 spreads. Shipped cases: pointcloud_moons at 500 of 3,000 steps (its
samples still a blob) 2.9x, 0.34 spreads; ddpm_swissroll_fixed at 1,500 steps 2.6x, 0.30; gmm_moons 0.7x, 0.08.
Broken: a DDPM sampler run with t upward or an Euler sampler run from t = 1 to 0 on moons: W2 8.5-31 times its
floor, 0.94-3.1 spreads, std ratio 1.3-3.2 (on a spiral as wide as N(0, I) the upward DDPM sampler returns noise of
the data's own scale: 0.45-0.52 spreads, a warning at most); flattened_moons: mean 3.4 spreads off.

With the facts `modes` or `classifier` the mode-collapse probe judges which parts of the data the samples cover,
so this probe keeps to samples too wide or misplaced, critical only (std over 3 times the data's, mean over 2
spreads off: a mode of the 5x5 grid lies 1.4 spreads from the mean); the W2, coverage and too-narrow rules are
off. A collapse onto some modes also shrinks the samples (gan_d_dominates: std ratio 0.30, mean 0.94 spreads off)
and is that probe's finding. For a VAE the too-narrow rule is off: its samples are decoder means, narrower than
the data by design (vae_mnist after one epoch: std ratio 0.11). In more than 10 dimensions W2 (in 10 principal
components, where its floor is large: 1.2-1.7x on MNIST and digits runs) only enters the critical rule.

The reservoir and the comparison are `gendiag.quantities.samples_vs_data`, the rule `gendiag.rules.samples_vs_data`
(its thresholds, with these margins as their basis, in `gendiag.rules.thresholds`), the figure
`gendiag.figures.samples_vs_data`.
"""

from __future__ import annotations

from typing import Any

import torch

from gendiag.context import ProbeContext
from gendiag.figures.samples_vs_data import CAPTION, image_shape, samples_figure, samples_snapshot
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.probes.thinning import LogStride
from gendiag.report.section import ProbeSection
from gendiag.quantities.samples_vs_data import SamplesAgainstData
from gendiag.rules.samples_vs_data import samples_unlike_data

FIGURE = "samples_vs_data"


@register
class SamplesVsDataProbe(Probe):
    """Generated samples against a reservoir of observed data rows: scale, W2 with its floor, coverage."""

    name = "samples_vs_data"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.against = SamplesAgainstData()
        self.judge_cover = True
        self.judge_narrow = True
        self.shape: tuple[int, int, int] | None = None  # (C, H, W) where a sample reads as an image
        self.observations = 0
        self.snapshots = LogStride(budget=50, first=1)  # over observations

    @property
    def data(self) -> Any:
        """The reservoir of data rows (None before the first data batch)."""
        return self.against.data

    def setup(self, ctx: ProbeContext) -> None:
        self.judge_cover = ctx.facts.get("modes") is None and ctx.facts.get("classifier") is None
        self.judge_narrow = self.judge_cover and ctx.task != "vae"

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        if role == "data":
            self.against.add_data(batch)

    def on_samples(self, ctx: ProbeContext, samples: torch.Tensor, step: int) -> None:
        self.shape = image_shape(tuple(samples.shape[1:]), ctx.facts.get("image_shape"))
        compared = self.against.add_samples(samples, step)
        for key, value in compared.items():
            ctx.log_scalar(f"samples/{key}", value, step)
        self.observations += 1
        if compared and self.snapshots.take(self.observations):
            ctx.log_figure(samples_snapshot(self.against.samples, self.against.data.rows, self.shape, step),
                           "samples/over_data", step)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        title = "Samples against the data"
        against = self.against
        if against.samples is None:
            return None
        skipped = against.why_not()
        if skipped is not None:
            return ProbeSection(title=title, text=f"Not measured: {skipped}.")
        data = against.data.rows
        gap = against.gap()
        figure = ctx.save_figure(samples_figure(against.samples, data, gap, self.shape), FIGURE, caption=CAPTION)
        text = (f"{gap.n_samples} samples (step {against.samples_step}) against {gap.n_data} data rows kept of "
                f"{against.data.seen} seen, {gap.dimension} values each. Overall std ratio {gap.std_ratio:.3g} "
                f"(data subsets of {gap.n_compared} rows: within {gap.std_ratio_floor:.3g}x), per-dimension std "
                f"ratios {gap.dim_std_ratio_low:.3g}-{gap.dim_std_ratio_high:.3g}, RMS ratio {gap.rms_ratio:.3g}; mean "
                f"offset {gap.mean_offset:.3g} data spreads (subsets: {gap.mean_offset_floor:.3g}). In the "
                f"{gap.space}, with {gap.n_compared} points a side over {gap.repeats} draws: W2 {gap.w2:.4g} against a "
                f"floor of {gap.w2_floor:.4g} (data against data; {gap.w2_over_floor:.2f}x), "
                f"{gap.w2_over_spread:.2f} data spreads ({gap.data_spread:.4g}); a Gaussian with the data's mean and "
                f"covariance: W2 {gap.w2_gaussian:.4g}. Energy distance {gap.energy:.4g} "
                f"({gap.energy_over_spread:.3g} data spreads; data against data: {gap.energy_floor:.4g}), which a few "
                f"far samples sway less than W2. Coverage {gap.coverage:.2f} (floor {gap.coverage_floor:.2f}).")
        if not self.judge_cover:
            text += (" The facts `modes`/`classifier` are given: which parts of the data the samples cover (and "
                     "samples narrower than the data) are the mode-collapse probe's to judge; here only samples too "
                     "wide or misplaced are.")
        elif not self.judge_narrow:
            text += (" A VAE's samples are decoder means, narrower than the data by design: only samples too wide "
                     "or misplaced are judged.")
        return ProbeSection(title=title, text=text, figures=[figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        against = self.against
        finding = samples_unlike_data(against.gap(), against.samples_step,
                                      0 if against.data is None else against.data.seen, self.judge_cover,
                                      self.judge_narrow, ctx.task, f"figures/{FIGURE}.png",
                                      guided=ctx.guidance.guided(ctx.facts))
        return [] if finding is None else [finding]

    def state(self) -> dict[str, Any]:
        if self.against.samples is None:
            return {}
        gap = self.against.gap()
        if gap is None:
            return {"skipped": self.against.why_not()}
        return {**gap.as_dict(), "w2_over_floor": gap.w2_over_floor, "w2_over_spread": gap.w2_over_spread,
                "energy_over_spread": gap.energy_over_spread}

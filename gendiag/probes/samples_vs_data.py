"""Samples against the data the loop showed: generated samples that plainly do not look like the training data.

It needs no facts: the data batches seen through `observe_data(role="data")` are the reference. Per batch it only
offers the rows to a reservoir (uniform over all rows of all batches, at most 2,048 rows and 2^21 numbers, images
flattened, its own seeded generator: `gendiag.flow.reservoir`). On each `observe_samples` it logs the samples'
scale against the data's (`samples/std_ratio`, `samples/mean_offset`); at the end it compares the last samples with
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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.figures import new_figure
from gendiag.findings import Finding
from gendiag.flow.projection import principal_plane
from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.metrics.samples_vs_data import LOW_DIM, MIN_SAMPLES, SampleGap, compare_to_data
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_ROWS = 2048
KEEP_SAMPLES = 2048
SCALE_CRITICAL, SCALE_WARNING = 3.0, 2.0  # std ratio (or its inverse) above this
OFFSET_CRITICAL, OFFSET_WARNING = 1.0, 0.5  # mean offset in data spreads
OFFSET_WITH_MODES = 2.0  # with known modes or classes: samples piled on one mode sit up to ~1.4 spreads off
W2_FLOOR_CRITICAL, W2_SPREAD_CRITICAL = 5.0, 0.6  # W2 over its floor, and over the data spread
W2_FLOOR_WARNING, W2_SPREAD_WARNING = 4.0, 0.5
COVERAGE_WARNING, COVERAGE_W2_FLOOR = 0.3, 3.0  # coverage under this share of its floor, with W2 over 3 floors
FLOOR_MARGIN = 2.0  # every limit at least this many times the data-vs-data deviation (for the std ratio: in log)

SUGGESTIONS = {
    "diffusion": ("Check the sampler against the training code: t must run from T - 1 down to 0 "
                  "(`reversed(range(T))`), each step x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) * eps) / sqrt(alpha_t) "
                  "+ sigma_t z (no noise at the last step), with the same betas and alphas_cumprod as in training and "
                  "the same time input (integer or scaled) the network was trained on."),
    "flow": ("Check the sampler against the training path: with x_t = (1 - t) x0 + t x1 and target x1 - x0, start "
             "from the source noise at t = 0 and integrate x <- x + dt * v(x, t) up to t = 1 (t increasing, the "
             "same time scaling as in training), with enough steps; a sampler run from t = 1 to 0 or with the "
             "opposite sign moves away from the data."),
}
SAME_SPACE = ("First check that the samples reach `observe_samples` in the space of the data batches given to "
              "`observe_data` (the same normalisation: not mapped to [0, 1] when the data is in [-1, 1]). ")
UNDERTRAINED = (" If the sampler is right, the network has not learned the data yet: look at the loss and gradient "
                "findings, train longer or with a working learning rate, and observe samples again.")
GENERIC_SUGGESTION = ("Compare the sampling path with training: the latent prior drawn at sampling (its scale and "
                      "shape), the output transform (tanh / sigmoid / denormalisation) against the data's range, and "
                      "that the samples come from the trained network (not a fresh or averaged copy).")


@register
class SamplesVsDataProbe(Probe):
    """Generated samples against a reservoir of observed data rows: scale, W2 with its floor, coverage."""

    name = "samples_vs_data"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.data: Reservoir | None = None
        self.samples: torch.Tensor | None = None
        self.samples_step: int | None = None
        self.generator = torch.Generator().manual_seed(41)
        self.gap: SampleGap | None = None
        self.skipped: str | None = None
        self.figure: str | None = None
        self.judge_cover = True
        self.judge_narrow = True

    def setup(self, ctx: ProbeContext) -> None:
        self.judge_cover = ctx.facts.get("modes") is None and ctx.facts.get("classifier") is None
        self.judge_narrow = self.judge_cover and ctx.task != "vae"

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        if role != "data":
            return
        if self.data is None:
            self.data = Reservoir(capacity_for(int(batch[0].numel()), MAX_ROWS, MAX_ROWS), seed=43)
        self.data.add(batch)

    def on_samples(self, ctx: ProbeContext, samples: torch.Tensor, step: int) -> None:
        self.samples = samples[:KEEP_SAMPLES].detach().reshape(min(len(samples), KEEP_SAMPLES), -1).float().cpu()
        self.samples_step = step
        data = self.data.rows if self.data is not None else None
        if data is None or len(data) < 2 or data.shape[1] != self.samples.shape[1]:
            return
        spread = _spread(data)
        if spread > 0:
            ctx.log_scalar("samples/std_ratio", _spread(self.samples) / spread, step)
            ctx.log_scalar("samples/mean_offset", float((self.samples.mean(0) - data.mean(0)).norm()) / spread, step)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        title = "Samples against the data"
        if self.samples is None:
            return None
        self.skipped = self._why_not()
        if self.skipped is not None:
            return ProbeSection(title=title, text=f"Not measured: {self.skipped}.")
        data = self.data.rows
        self.gap = compare_to_data(self.samples, data, self.generator)
        self.figure = ctx.save_figure(self._figure(data), "samples_vs_data")
        gap = self.gap
        text = (f"{gap.n_samples} samples (step {self.samples_step}) against {gap.n_data} data rows kept of "
                f"{self.data.seen} seen, {gap.dimension} values each. Overall std ratio {gap.std_ratio:.3g} "
                f"(data subsets of {gap.n_compared} rows: within {gap.std_ratio_floor:.3g}x), per-dimension std "
                f"ratios {gap.dim_std_ratio_low:.3g}-{gap.dim_std_ratio_high:.3g}, RMS ratio {gap.rms_ratio:.3g}; mean "
                f"offset {gap.mean_offset:.3g} data spreads (subsets: {gap.mean_offset_floor:.3g}). In the "
                f"{gap.space}, with {gap.n_compared} points a side over {gap.repeats} draws: W2 {gap.w2:.4g} against a "
                f"floor of {gap.w2_floor:.4g} (data against data; {gap.w2_over_floor:.2f}x), "
                f"{gap.w2_over_spread:.2f} data spreads ({gap.data_spread:.4g}); a Gaussian with the data's mean and "
                f"covariance: W2 {gap.w2_gaussian:.4g}. Coverage {gap.coverage:.2f} (floor {gap.coverage_floor:.2f}).")
        if not self.judge_cover:
            text += (" The facts `modes`/`classifier` are given: which parts of the data the samples cover (and "
                     "samples narrower than the data) are the mode-collapse probe's to judge; here only samples too "
                     "wide or misplaced are.")
        elif not self.judge_narrow:
            text += (" A VAE's samples are decoder means, narrower than the data by design: only samples too wide "
                     "or misplaced are judged.")
        return ProbeSection(title=title, text=text, figures=[self.figure])

    def _why_not(self) -> str | None:
        if self.data is None or len(self.data) < 2 * MIN_SAMPLES:
            seen = 0 if self.data is None else len(self.data)
            return (f"{seen} data rows were observed (`observe_data(batch, role=\"data\")`), "
                    f"{2 * MIN_SAMPLES} are needed")
        if len(self.samples) < MIN_SAMPLES:
            return f"{len(self.samples)} samples were observed, {MIN_SAMPLES} are needed"
        if self.samples.shape[1] != self.data.rows.shape[1]:
            return (f"the samples have {self.samples.shape[1]} values each and the data rows "
                    f"{self.data.rows.shape[1]}")
        if _spread(self.data.rows) == 0:
            return "every data row kept is the same"
        return None

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        gap = self.gap
        if gap is None:
            return []
        reasons = {"critical": self._reasons(gap, critical=True), "warning": self._reasons(gap, critical=False)}
        severity = "critical" if reasons["critical"] else "warning" if reasons["warning"] else None
        if severity is None:
            return []
        message = (f"The {gap.n_samples} generated samples (step {self.samples_step}) do not look like the "
                   f"{gap.n_data} data rows the loop showed: {'; '.join(long for _, long in reasons[severity])}. "
                   f"For reference, data subsets of {gap.n_compared} rows give a std ratio within "
                   f"{gap.std_ratio_floor:.2f}x and a mean offset of {gap.mean_offset_floor:.2f} spreads; in the "
                   f"{gap.space}, W2 is {gap.w2:.3g} for the samples, {gap.w2_floor:.3g} for data against data and "
                   f"{gap.w2_gaussian:.3g} for a Gaussian with the data's mean and covariance; the samples cover "
                   f"{gap.coverage:.2f} of the data rows (data against data: {gap.coverage_floor:.2f}).")
        if not self.judge_cover:
            message += (" (Which modes or classes the samples cover, and samples that shrink onto a few of them, "
                        "are judged by the mode-collapse probe; this finding is about samples too wide or misplaced.)")
        return [Finding(
            code="samples-unlike-data", severity=severity,
            title=f"Generated samples do not look like the data ({reasons[severity][0][0]})",
            message=message, evidence={"step": self.samples_step, **gap.as_dict(),
                                       "w2_over_floor": gap.w2_over_floor, "w2_over_spread": gap.w2_over_spread,
                                       "data_rows_seen": self.data.seen, "judged_coverage": self.judge_cover},
            suggestion=SAME_SPACE + SUGGESTIONS.get(ctx.task, GENERIC_SUGGESTION) + UNDERTRAINED, figure=self.figure,
        )]

    def _reasons(self, gap: SampleGap, critical: bool) -> list[tuple[str, str]]:
        """(short, long) descriptions of each limit the samples cross."""
        if not critical and not self.judge_cover:
            return []
        scale_limit = max(SCALE_CRITICAL if critical else SCALE_WARNING, gap.std_ratio_floor ** FLOOR_MARGIN)
        offset = (OFFSET_CRITICAL if critical else OFFSET_WARNING) if self.judge_cover else OFFSET_WITH_MODES
        offset_limit = max(offset, FLOOR_MARGIN * gap.mean_offset_floor)
        reasons = []
        if gap.std_ratio > scale_limit or (self.judge_narrow and 1 / gap.std_ratio > scale_limit):
            reasons.append((f"std {gap.std_ratio:.2g}x the data's",
                            f"their standard deviation is {gap.std_ratio:.3g} times the data's (limit "
                            f"{scale_limit:.3g}x{' either way' if self.judge_narrow else ''})"))
        if gap.mean_offset > offset_limit:
            reasons.append((f"mean {gap.mean_offset:.2g} data spreads away",
                            f"their mean lies {gap.mean_offset:.3g} data spreads from the data's (limit "
                            f"{offset_limit:.3g})"))
        if not self.judge_cover:
            return reasons
        low = gap.dimension <= LOW_DIM
        floor_limit, spread_limit = ((W2_FLOOR_CRITICAL, W2_SPREAD_CRITICAL) if critical
                                     else (W2_FLOOR_WARNING, W2_SPREAD_WARNING))
        if (critical or low) and gap.w2_over_floor > floor_limit and gap.w2_over_spread > spread_limit:
            reasons.append((f"W2 {gap.w2_over_floor:.1f}x the data-vs-data floor",
                            f"W2 in the {gap.space} is {gap.w2:.3g}, {gap.w2_over_floor:.1f} times the data-vs-data "
                            f"floor and {gap.w2_over_spread:.2f} data spreads (limits {floor_limit:g}x and "
                            f"{spread_limit:g})"))
        if (not critical and low and gap.coverage < COVERAGE_WARNING * gap.coverage_floor
                and gap.w2_over_floor > COVERAGE_W2_FLOOR):
            reasons.append((f"coverage {gap.coverage:.2f} against {gap.coverage_floor:.2f}",
                            f"they cover {gap.coverage:.2f} of the data rows against {gap.coverage_floor:.2f} for "
                            f"data against data, with W2 {gap.w2_over_floor:.1f} times its floor"))
        return reasons

    def state(self) -> dict[str, Any]:
        if self.gap is None:
            return {"skipped": self.skipped} if self.skipped else {}
        return {**self.gap.as_dict(), "w2_over_floor": self.gap.w2_over_floor,
                "w2_over_spread": self.gap.w2_over_spread}

    def _figure(self, data: torch.Tensor) -> Figure:
        samples = self.samples
        if data.shape[1] == 1:  # one value per row: the value against the row's position
            data_xy = torch.stack([data[:, 0], torch.arange(len(data)) / len(data)], 1).numpy()
            samples_xy = torch.stack([samples[:, 0], torch.arange(len(samples)) / len(samples)], 1).numpy()
            xlabel, ylabel = "x[0]", "row (spread out)"
        else:
            plane = principal_plane(data)
            data_xy, samples_xy = plane.project(data).numpy(), plane.project(samples).numpy()
            xlabel, ylabel = plane.axis_labels()
        figure, axes = new_figure(1, 2, figsize=(11, 4.3))
        axes[0].scatter(data_xy[:, 0], data_xy[:, 1], s=3, alpha=0.4, color="tab:gray", label="data (kept rows)")
        axes[0].scatter(samples_xy[:, 0], samples_xy[:, 1], s=3, alpha=0.5, color="tab:red", label="samples")
        axes[0].set_xlabel(xlabel)
        axes[0].set_ylabel(ylabel)
        axes[0].set_title(f"Samples over the data (std ratio {self.gap.std_ratio:.2f})", fontsize=10)
        axes[0].legend(fontsize=8)
        mean = data.double().mean(0)
        data_norms = (data.double() - mean).norm(dim=1).numpy()
        sample_norms = (samples.double() - mean).norm(dim=1).numpy()
        bins = np.linspace(0, max(data_norms.max(), sample_norms.max()) * 1.02 + 1e-12, 50)
        for values, label, color in ((data_norms, "data", "tab:gray"), (sample_norms, "samples", "tab:red")):
            axes[1].hist(values, bins=bins, alpha=0.55, color=color, label=label,
                         weights=np.full(len(values), 1 / len(values)))
        axes[1].set_xlabel("distance to the data mean")
        axes[1].set_ylabel("share of rows")
        axes[1].set_title(f"Mean offset {self.gap.mean_offset:.2f} spreads; W2 {self.gap.w2:.3g} (floor "
                          f"{self.gap.w2_floor:.3g}), coverage {self.gap.coverage:.2f}", fontsize=10)
        axes[1].legend(fontsize=8)
        figure.tight_layout()
        return figure


def _spread(rows: torch.Tensor) -> float:
    """RMS distance of the rows to their mean."""
    rows = rows.double()
    return float((rows - rows.mean(0)).pow(2).sum(1).mean().sqrt())

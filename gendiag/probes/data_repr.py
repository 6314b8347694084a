"""Data representation: is a sample of the training data one draw from the distribution, and is the source batch
the noise the model is meant to start from?

Per observed batch it keeps at most 64 rows of the first batch and of every k-th after it (eight batches per role
at most; k doubles when full, so the sample spans the whole run). Everything else runs in `finish` on those rows,
through the pure checks in `gendiag.checks.representation` and `gendiag.checks.source`. The fact
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
  `gendiag.checks.source`.
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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from gendiag.checks.representation import (
    MIN_SIGNAL_VALUES, NoiseCheck, RenderCheck, ScaleComparison, Spread, ValueProfile, as_batch, compare_scale,
    image_view, noise_check, rendered_point_cloud, spread, value_profile,
)
from gendiag.checks.source import SourceComparison, compare_sources, declared_rows
from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding
from gendiag.flow.projection import principal_plane
from gendiag.probes import register
from gendiag.probes.base import TASKS, ForwardCall, Probe, ProbeSection
from gendiag.rows import RowPicker

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROWS_PER_BATCH = 64
KEPT_BATCHES = 8
DISTINCT_WARNING = 0.5
DISTINCT_CRITICAL = 0.1
MIN_COMPARED = 8
SCALE_HIGH = 5.0
SCALE_LOW = 0.1
SHOWN_IMAGES = 6
SAMPLED_TASKS = ("flow", "diffusion")
DECLARED_VALUES = 2**16  # values drawn from a declared source: 256 rows of 2D points, 64 rows of 64x64 images


class BatchSample:
    """The first batch and every k-th after it, at most `capacity` batches of at most `rows` rows: when full, every
    other kept batch is dropped and k doubles, so the kept batches span everything offered at a fixed cost. The rows
    of a batch are chosen at random (its own generator), so a batch whose rows come in order is sampled fairly."""

    def __init__(self, capacity: int = KEPT_BATCHES, rows: int = ROWS_PER_BATCH, seed: int = 0) -> None:
        self.capacity = capacity
        self.rows = rows
        self.picker = RowPicker(seed)
        self.stride = 1
        self.offered = 0
        self.batches: list[torch.Tensor] = []

    def offer(self, batch: torch.Tensor, role: str) -> None:
        index = self.offered
        self.offered += 1
        if index % self.stride:
            return
        if self.batches and batch.shape[1:] != self.batches[0].shape[1:]:
            raise ValueError(f"data_repr: {role} batches changed shape from {tuple(self.batches[0].shape[1:])} "
                             f"to {tuple(batch.shape[1:])} per sample")
        self.batches.append(self.picker.take(batch.detach(), self.rows).to("cpu", copy=True))
        if len(self.batches) > self.capacity:
            self.batches = self.batches[::2]
            self.stride *= 2

    def rows_kept(self) -> torch.Tensor:
        return torch.cat([b.to(torch.float64) for b in self.batches])


@dataclass
class RoleChecks:
    """Every check on the kept rows of one role."""

    batch_size: int
    batches: int
    spread: Spread
    render: RenderCheck
    values: ValueProfile
    noise: NoiseCheck | None


@register
class DataRepresentationProbe(Probe):
    """Point cloud or flattened image? Near-duplicates, pixel values, scale, and whether the source is noise."""

    name = "data_repr"
    tasks = tuple(task for task in TASKS if task != "autoregressive")  # its checks are for continuous models

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.kept = {"data": BatchSample(seed=1), "source": BatchSample(seed=2)}
        self.batch_size: dict[str, int] = {}
        self.checks: dict[str, RoleChecks] = {}
        self.scale: ScaleComparison | None = None
        self.figures: dict[str, str] = {}
        self.binary_expected = False
        self.starts = BatchSample()
        self._runs: dict[str, tuple[int, float | None]] = {}  # model -> (step, first time) of its sampling run
        self.matches: dict[str, SourceComparison] = {}  # "sampler" / "declared" -> against the training source

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

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        self.binary_expected = ctx.task == "vae" or ctx.facts.get("likelihood") == "bernoulli"
        image_shape = ctx.facts.get("image_shape")
        rows = {role: kept.rows_kept() for role, kept in self.kept.items() if kept.batches}
        if not rows:
            return None
        for role, values in rows.items():
            self.checks[role] = RoleChecks(
                batch_size=self.batch_size[role], batches=len(self.kept[role].batches), spread=spread(values),
                render=rendered_point_cloud(values, image_shape), values=value_profile(values),
                noise=noise_check(values) if role == "source" else None)
        if "data" in rows and ("source" in rows or ctx.task in ("flow", "diffusion")):
            self.scale = compare_scale(rows["data"], rows.get("source"))
        others = self._other_sources(ctx) if "source" in rows else {}
        for label, other in others.items():
            comparison = compare_sources(rows["source"], other)
            if comparison is not None:
                self.matches[label] = comparison
        self._log(ctx)
        self.figures = self._figures(ctx, rows, image_shape)
        if "source" in rows and self.matches:
            self.figures["sources"] = ctx.save_figure(_sources_figure(rows["source"], others),
                                                      "data_repr_source_vs_sampler")
        return ProbeSection(title="Data representation", text=self._summary(), figures=list(self.figures.values()),
                            table=self._table())

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        found = [self._near_duplicates(), self._rendered(), self._source_sampler_mismatch(), self._source_not_noise(),
                 self._scale_mismatch(), self._binary_pixels()]
        return [f for f in found if f is not None]

    def state(self) -> dict[str, Any]:
        summary: dict[str, Any] = {role: _role_numbers(checks) for role, checks in self.checks.items()}
        if self.scale is not None:
            summary["scale_ratio"] = self.scale.ratio
        for label, comparison in self.matches.items():
            summary[f"source_vs_{label}"] = _comparison_numbers(comparison)
        return summary

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

    # -- rules ------------------------------------------------------------------------------------------

    def _near_duplicates(self) -> Finding | None:
        data = self.checks.get("data")
        if data is None:
            return None
        dup = data.render.duplicates
        if dup.samples < MIN_COMPARED or dup.distinct_fraction > DISTINCT_WARNING:
            return None
        severity = "critical" if dup.distinct_fraction <= DISTINCT_CRITICAL else "warning"
        how = ("a sample's own spread" if dup.criterion != "exact" else "exact equality")
        return Finding(
            code="data-near-duplicates", severity=severity,
            title=f"The data holds about {dup.effective_distinct:.1f} distinct samples in {dup.samples}",
            message=(f"Across {dup.samples} data samples kept from {data.batches} observed batches, only about "
                     f"{dup.effective_distinct:.1f} are distinct ({dup.with_duplicate_fraction:.0%} of samples have "
                     f"a near-copy): two samples differ by a median {dup.median_relative_distance:.3f} of "
                     f"{how} (near-duplicate at <= {dup.tolerance:g}; distinct images differ by about 1). "
                     f"Between-sample spread is {data.spread.ratio:.3f} of within-sample spread. Each sample has "
                     f"{data.spread.dimension} values against a batch of {data.batch_size}: the model is asked to "
                     f"map noise onto essentially one point in {data.spread.dimension} dimensions."),
            evidence={"samples_compared": dup.samples, "effective_distinct": round(dup.effective_distinct, 2),
                      "distinct_fraction": dup.distinct_fraction,
                      "with_duplicate_fraction": dup.with_duplicate_fraction,
                      "median_relative_distance": dup.median_relative_distance,
                      "min_relative_distance": dup.min_relative_distance, "tolerance": dup.tolerance,
                      "criterion": dup.criterion, "image_pooling": dup.pool,
                      "between_over_within_spread": data.spread.ratio, "dimension": data.spread.dimension,
                      "batch_size": data.batch_size,
                      "dimension_per_sample": data.spread.dimension / data.batch_size},
            suggestion=("A sample must be one draw from the data distribution. If each sample is a picture of a "
                        "whole point cloud, train on the points (a sample is one point, a batch is a point cloud); "
                        "otherwise check that the loader returns different items."),
            figure=self.figures.get("samples"),
        )

    def _rendered(self) -> Finding | None:
        roles = [role for role, checks in self.checks.items() if checks.render.looks_rendered]
        if not roles:
            return None
        render = self.checks[roles[0]].render
        return Finding(
            code="rendered-point-cloud", severity="critical",
            title=f"Each {' and '.join(roles)} sample is a picture of a whole 2D point cloud",
            message=(f"The {' and '.join(roles)} samples are {render.height}x{render.width} images that put their "
                     f"pixel mass in the same place with the same spread in every image (centroids move "
                     f"{render.centroid_spread:.3f} of the spatial spread of {render.spatial_spread:.1f} pixels; the "
                     f"spread varies by {render.spread_variation:.3f}) and are near-copies of one another "
                     f"({render.duplicates.effective_distinct:.1f} distinct in {render.duplicates.samples}). An "
                     "image of a whole distribution is one fixed picture, not a draw from it: a model trained on "
                     "such samples can only learn that picture, and the point cloud's own structure is lost."),
            evidence={"roles": roles, "image_height": render.height, "image_width": render.width,
                      "spatial_spread_pixels": render.spatial_spread, "centroid_spread": render.centroid_spread,
                      "spread_variation": render.spread_variation,
                      "effective_distinct": round(render.duplicates.effective_distinct, 2),
                      "samples_compared": render.duplicates.samples,
                      **{f"{role}_two_level": self.checks[role].values.two_level for role in roles}},
            suggestion=("Represent the data as what it is: a sample is one 2D point and a batch of points is the "
                        "point cloud; the source is N(0, I) in 2D. Keep images only for data that are images."),
            figure=self.figures.get("samples"),
        )

    def _source_sampler_mismatch(self) -> Finding | None:
        differing = {label: c for label, c in self.matches.items() if c.differs}
        if not differing:
            return None
        names = {"sampler": "the sampler's first inputs (forward calls in `mon.sampling()`)",
                 "declared": "the declared source (fact `source`)"}
        first = next(iter(differing.values()))
        parts = [f"{names[label]}: energy distance {c.energy:.3g} (permutation p = {c.p_value:.3g}, energy coefficient "
                 f"{c.coefficient:.3f}; 0 for one distribution), mean {_shown(c.mean_b)} and standard deviation "
                 f"{_shown(c.std_b)} over {c.rows_b} rows" for label, c in differing.items()]
        return Finding(
            code="source-sampler-mismatch", severity="critical",
            title="Sampling starts from another distribution than the training source",
            message=(f"The source batches seen in training ({first.rows_a} rows kept) have mean {_shown(first.mean_a)} "
                     f"and standard deviation {_shown(first.std_a)}; against them, {'; '.join(parts)}. A flow or "
                     "diffusion model only learned to move the training source: started elsewhere, its sampler "
                     "follows a field that was never trained there."),
            evidence={label: _comparison_numbers(c) for label, c in differing.items()},
            suggestion=("Draw the sampler's start with the same function as the training x0 (for example x0 = "
                        "sample_source(n) in both places), and declare it: Monitor(..., source=sample_source)."),
            figure=self.figures.get("sources"),
        )

    def _source_not_noise(self) -> Finding | None:
        source = self.checks.get("source")
        if source is None or source.noise is None or source.noise.is_noise:
            return None
        noise = source.noise
        red_flag = source.render.looks_rendered or not noise.independent_ok
        if not red_flag and any(c.differs for c in self.matches.values()):
            return None  # source-sampler-mismatch names both distributions
        problems = [text for ok, text in (
            (noise.mean_ok, f"mean {noise.mean:.3g} (N(0, I): 0)"),
            (noise.spread_ok, f"standard deviation {noise.std:.3g} (1)"),
            (noise.shape_ok, f"distance {noise.ks_statistic:.3f} from a normal shape (noise: <= {noise.ks_limit:.3f})"),
            (noise.independent_ok, f"spread across samples {noise.independence:.3f} of the overall spread "
                                   "(independent draws: about 1)"),
        ) if not ok]
        evidence = {"mean": noise.mean, "std": noise.std, "ks_statistic": noise.ks_statistic,
                    "ks_limit": noise.ks_limit, "skewness": noise.skewness,
                    "excess_kurtosis": noise.excess_kurtosis, "independence": noise.independence,
                    "distinct_values": source.values.distinct, "two_level": source.values.two_level,
                    "looks_rendered": source.render.looks_rendered, "samples": noise.samples,
                    **{f"matches_{label}": not c.differs for label, c in self.matches.items()}}
        numbers = (f"The source batch ({noise.samples} samples kept, {noise.values} values tested) has "
                   f"{'; '.join(problems)}. It holds {source.values.distinct} distinct values"
                   f"{' at two levels' if source.values.two_level else ''}.")
        if red_flag:
            what = (" It looks like a rendered point cloud, not pixel noise." if source.render.looks_rendered else
                    " Its samples are copies of one another.")
            return Finding(
                code="source-not-noise", severity="critical", title="The source batch is not N(0, I) noise",
                message=(numbers + what + " A source is a distribution to draw fresh, independent samples from; a "
                         "fixed picture gives every sample the same start, so the flow can only learn one path "
                         "(even when the sampler starts from the same picture)."),
                evidence=evidence,
                suggestion=("Draw the source as torch.randn_like(data), fresh for every batch, and start sampling "
                            "from the same distribution."),
                figure=self.figures.get("qq"),
            )
        if self.matches:
            checked = " and ".join("the sampler's first inputs" if label == "sampler" else "the declared source"
                                   for label in self.matches)
            return Finding(
                code="source-chosen", severity="info", title="The source is a chosen distribution, not N(0, I)",
                message=(numbers + f" Sampling starts from the same distribution ({checked} match the training "
                         "source), so this is a choice, not a bug: flow matching transports any source to the data. "
                         "The velocity probe's exact field uses the observed source rows instead of N(0, I)."),
                evidence=evidence, suggestion="Nothing to change if the source is the one you meant.",
                figure=self.figures.get("sources"),
            )
        return Finding(
            code="source-not-noise", severity="warning", title="The source batch is not N(0, I) noise",
            message=(numbers + " That is fine if the sampler starts from the same distribution (flow matching "
                     "transports any source, eight Gaussians to moons for one); gendiag could not check it: no "
                     "sampling calls of a watched network were recorded and no source was declared. If the sampler "
                     "draws N(0, I) noise instead, the learned flow starts from the wrong place."),
            evidence=evidence,
            suggestion=("If this source is meant, declare it, Monitor(..., source=sample_source) with "
                        "sample_source(n) -> batch (or a batch), or run the sampler inside `with mon.sampling():` "
                        "on the watched network; gendiag then compares it with the training source. If not, draw "
                        "x0 = torch.randn_like(x1)."),
            figure=self.figures.get("qq"),
        )

    def _scale_mismatch(self) -> Finding | None:
        scale, data = self.scale, self.checks.get("data")
        if scale is None or data is None or SCALE_LOW <= scale.ratio <= SCALE_HIGH:
            return None
        unnormalized = " The values are whole numbers in [0, 255]: images never divided by 255." \
            if data.values.looks_0_255 else ""
        return Finding(
            code="data-scale-mismatch", severity="warning",
            title=f"The data is {scale.ratio:.3g} times the scale of the {scale.reference}",
            message=(f"Data RMS value {scale.data_rms:.4g} against {scale.reference_rms:.4g} for the "
                     f"{scale.reference} (ratio {scale.ratio:.3g}; data values in [{data.values.minimum:.4g}, "
                     f"{data.values.maximum:.4g}]).{unnormalized} The path from source to data then spans mostly "
                     "a change of scale, and the network's inputs and targets differ in size by that factor."),
            evidence={"data_rms": scale.data_rms, "reference_rms": scale.reference_rms, "ratio": scale.ratio,
                      "reference": scale.reference, "data_min": data.values.minimum,
                      "data_max": data.values.maximum, "looks_0_255": data.values.looks_0_255},
            suggestion=("Normalise the data to about unit scale (images: divide by 255, then map to [-1, 1]; "
                        "points: standardise), or scale the source to match."),
            figure=self.figures.get("values"),
        )

    def _binary_pixels(self) -> Finding | None:
        data = self.checks.get("data")
        if data is None or data.spread.dimension < MIN_SIGNAL_VALUES or not data.values.two_level:
            return None
        values = data.values
        return Finding(
            code="data-binary-pixels", severity="info" if self.binary_expected else "warning",
            title="The data values are black and white only",
            message=(f"{values.extreme_fraction:.1%} of the data values sit at the minimum {values.minimum:.4g} or "
                     f"the maximum {values.maximum:.4g} ({values.distinct} distinct values in {values.count}). "
                     "A distribution on the corners of a hypercube has no density for a continuous flow or "
                     "diffusion to match, and the rendering keeps only whether a pixel was hit, not how often."),
            evidence={"extreme_fraction": values.extreme_fraction, "distinct_values": values.distinct,
                      "minimum": values.minimum, "maximum": values.maximum, "values_examined": values.count},
            suggestion=("Use grey levels (for rendered points a normalised density, for images the original "
                        "intensities scaled to [-1, 1]), or a discrete model for binary data."),
            figure=self.figures.get("values"),
        )

    # -- logging, figures, section ---------------------------------------------------------------------

    def _log(self, ctx: ProbeContext) -> None:
        for role, checks in self.checks.items():
            prefix = "data/" if role == "data" else "data/source_"
            numbers = {"distinct_fraction": checks.render.duplicates.distinct_fraction,
                       "spread_ratio": checks.spread.ratio, "rms": checks.values.rms}
            if checks.noise is not None:
                numbers.update(ks=checks.noise.ks_statistic, mean=checks.noise.mean, std=checks.noise.std)
            for key, value in numbers.items():
                if np.isfinite(value):
                    ctx.log_scalar(f"{prefix}{key}", value)
        if self.scale is not None and np.isfinite(self.scale.ratio):
            ctx.log_scalar("data/scale_ratio", self.scale.ratio)

    def _figures(self, ctx: ProbeContext, rows: dict[str, torch.Tensor], image_shape: Any) -> dict[str, str]:
        figures = {"samples": ctx.save_figure(self._samples_figure(rows, image_shape), "data_repr_samples"),
                   "values": ctx.save_figure(self._values_figure(), "data_repr_values")}
        if "source" in rows:
            figures["qq"] = ctx.save_figure(_qq_figure(rows["source"]), "data_repr_source_qq")
        return figures

    def _samples_figure(self, rows: dict[str, torch.Tensor], image_shape: Any) -> Figure:
        """A few samples of each role (a montage of images, or a scatter of the first two values) beside the data's
        matrix of relative distances between samples."""
        views = {role: image_view(as_batch(values), image_shape) for role, values in rows.items()}
        duplicates = self.checks["data"].render.duplicates if "data" in self.checks else None
        heatmap = duplicates is not None and duplicates.criterion != "exact"
        figure, axes = new_figure(1, 1 + heatmap, squeeze=False, figsize=(10 if heatmap else 7, 3.4),
                                    gridspec_kw={"width_ratios": [2.2, 1] if heatmap else [1]})
        axis = axes[0][0]
        if all(view is not None for view in views.values()):
            axis.imshow(_montage(views), cmap="gray", interpolation="nearest")
            height = next(iter(views.values())).shape[1] + 2
            axis.set_yticks([height * (i + 0.5) for i in range(len(views))], list(views))
            axis.set_xticks([])
            axis.set_title(f"{SHOWN_IMAGES} samples per role, evenly spaced over the kept rows", fontsize=9)
        else:
            for role, values in rows.items():
                second = values[:, 1] if values.shape[1] > 1 else torch.zeros(len(values))
                axis.scatter(values[:, 0], second, s=4, alpha=0.5, label=role)
            axis.set_title("first two values of each sample", fontsize=9)
            legend(axis, fontsize=8)
        if heatmap:
            shown = duplicates.relative_distances[:64, :64]
            picture = axes[0][1].imshow(shown, cmap="viridis", vmin=0, vmax=max(1.5, float(np.nanmax(shown))))
            axes[0][1].set_title(f"data: distance / own spread\n{duplicates.effective_distinct:.1f} distinct in "
                                 f"{duplicates.samples}", fontsize=9)
            axes[0][1].set_xlabel("sample", fontsize=8)
            figure.colorbar(picture, ax=axes[0][1], fraction=0.046)
        figure.tight_layout()
        return figure

    def _values_figure(self) -> Figure:
        figure, axes = new_figure(1, len(self.checks), squeeze=False, figsize=(4.5 * len(self.checks), 3.2))
        for axis, (role, checks) in zip(axes[0], self.checks.items()):
            values = checks.values
            edges = values.histogram_edges
            axis.hist((edges[:-1] + edges[1:]) / 2, bins=edges, weights=values.histogram_counts, log=True)
            axis.set_title(f"{role} values: {values.distinct} distinct, {values.extreme_fraction:.0%} at the ends",
                           fontsize=9)
            axis.set_xlabel("value")
        axes[0][0].set_ylabel("count")
        figure.tight_layout()
        return figure

    def _summary(self) -> str:
        lines = []
        for role, checks in self.checks.items():
            dup = checks.render.duplicates
            lines.append(f"- **{role}**: {checks.batches} batches kept, batch size {checks.batch_size}, "
                         f"{checks.spread.dimension} values per sample; about {dup.effective_distinct:.1f} distinct "
                         f"samples in {dup.samples}; values in [{checks.values.minimum:.4g}, "
                         f"{checks.values.maximum:.4g}], {checks.values.distinct} distinct.")
        if self.scale is not None:
            lines.append(f"- **scale**: data RMS {self.scale.data_rms:.4g} against {self.scale.reference_rms:.4g} "
                         f"for the {self.scale.reference} (ratio {self.scale.ratio:.3g}).")
        for label, c in self.matches.items():
            what = "sampler's first inputs" if label == "sampler" else "declared source"
            lines.append(f"- **training source against the {what}**: energy distance {c.energy:.3g}, permutation "
                         f"p = {c.p_value:.3g}, energy coefficient {c.coefficient:.3f} over {c.rows_a} and {c.rows_b} "
                         f"rows: {'different distributions' if c.differs else 'no material difference'}.")
        return "\n".join(lines)

    def _table(self) -> pd.DataFrame:
        frame = pd.DataFrame({role: _role_numbers(checks) for role, checks in self.checks.items()})
        frame.index.name = "measure"
        return frame


def _role_numbers(checks: RoleChecks) -> dict[str, Any]:
    dup, render, values = checks.render.duplicates, checks.render, checks.values
    numbers: dict[str, Any] = {
        "batch size": checks.batch_size, "values per sample": checks.spread.dimension,
        "values per sample / batch size": checks.spread.dimension / checks.batch_size,
        "between / within spread": checks.spread.ratio, "samples compared": dup.samples,
        "effective distinct": round(dup.effective_distinct, 2), "distinct fraction": dup.distinct_fraction,
        "looks like a rendered point cloud": render.looks_rendered, "min": values.minimum, "max": values.maximum,
        "rms": values.rms, "distinct values": values.distinct, "two-level values": values.two_level,
    }
    if checks.noise is not None:
        numbers.update({"mean": checks.noise.mean, "std": checks.noise.std,
                        "normal-shape distance (KS)": checks.noise.ks_statistic,
                        "independence across samples": checks.noise.independence})
    return numbers


def _comparison_numbers(c: SourceComparison) -> dict[str, Any]:
    return {"energy_distance": round(c.energy, 5), "p_value": round(c.p_value, 4),
            "energy_coefficient": round(c.coefficient, 4), "differs": c.differs, "rows_training": c.rows_a,
            "rows_compared": c.rows_b, "mean_training": c.mean_a, "mean_compared": c.mean_b,
            "std_training": c.std_a, "std_compared": c.std_b, "rms_training": round(c.rms_a, 4),
            "rms_compared": round(c.rms_b, 4)}


def _shown(values: list[float]) -> str:
    return f"{values[0]:.3g}" if len(values) == 1 else "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


def _sources_figure(training: torch.Tensor, others: dict[str, torch.Tensor]) -> Figure:
    """The training source beside what sampling starts from: a scatter on the plane of the pooled rows' two leading
    principal components (the data space itself for 2D points), and histograms of the values along the first."""
    sets = {"training source": training.reshape(training.shape[0], -1).double()}
    names = {"sampler": "sampler's first inputs", "declared": "declared source"}
    sets.update({names[label]: rows.reshape(rows.shape[0], -1).double() for label, rows in others.items()
                 if rows[0].numel() == sets["training source"].shape[1]})
    figure, axes = new_figure(1, 2, figsize=(10, 4))
    pooled = torch.cat(list(sets.values()))
    if pooled.shape[1] >= 2:
        plane = principal_plane(pooled)
        projected = {name: plane.project(rows) for name, rows in sets.items()}
        labels = plane.axis_labels()
    else:
        projected = {name: torch.cat([rows, torch.zeros_like(rows)], 1) for name, rows in sets.items()}
        labels = ("x[0]", "")
    for name, xy in projected.items():
        axes[0].scatter(xy[:, 0], xy[:, 1], s=5, alpha=0.5, label=f"{name} ({len(xy)})")
        axes[1].hist(xy[:, 0].numpy(), bins=40, density=True, histtype="step", label=name)
    axes[0].set_xlabel(labels[0])
    axes[0].set_ylabel(labels[1])
    axes[0].set_title("source rows", fontsize=9)
    axes[0].legend(fontsize=8, markerscale=2)
    axes[1].set_xlabel(labels[0])
    axes[1].set_ylabel("density")
    axes[1].set_title("along the first axis", fontsize=9)
    figure.tight_layout()
    return figure


def _montage(views: dict[str, torch.Tensor]) -> np.ndarray:
    """SHOWN_IMAGES evenly spaced images of each role, one role per row, each scaled to [0, 1], 2-pixel gaps; the
    image's row 0 (the smallest y of a rendered point cloud) at the bottom."""
    lines = []
    for view in views.values():
        picks = np.linspace(0, len(view) - 1, SHOWN_IMAGES).round().astype(int)
        tiles = []
        for index in picks:
            image = view[index].flip(0).numpy()
            low, high = image.min(), image.max()
            tiles.append(np.pad((image - low) / (high - low) if high > low else image * 0, 1, constant_values=1))
        lines.append(np.concatenate(tiles, axis=1))
    return np.concatenate(lines, axis=0)


def _qq_figure(source: torch.Tensor) -> Figure:
    values = source.reshape(-1).numpy()
    if values.size > 4000:
        values = values[np.linspace(0, values.size - 1, 4000).round().astype(int)]
    (theory, ordered), _ = stats.probplot(values, dist="norm")
    figure, axis = new_figure(figsize=(4.2, 4))
    axis.plot(theory, ordered, ".", markersize=2, label="source values")
    axis.plot(theory, theory, color="black", linewidth=1, label="N(0, 1)")
    axis.set_xlabel("N(0, 1) quantile")
    axis.set_ylabel("source value quantile")
    axis.set_title("source against N(0, 1)")
    legend(axis)
    figure.tight_layout()
    return figure

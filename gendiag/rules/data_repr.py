"""Rules of the data representation probe: one function per finding code, each from the `Representation`
measured on the kept rows (and the paths of the probe's figures), None where it has nothing to say."""

from __future__ import annotations

from gendiag.findings import Finding
from gendiag.quantities.data_repr import Representation, comparison_numbers
from gendiag.quantities.representation import MIN_SIGNAL_VALUES
from gendiag.rules.thresholds import DATA_DISTINCT_CRITICAL, DATA_DISTINCT_WARNING, DATA_SCALE_HIGH, DATA_SCALE_LOW

MIN_COMPARED = 8


def representation_findings(summary: Representation, figures: dict[str, str], binary_expected: bool) -> list[Finding]:
    """Every finding of the probe, in the report's order (near-duplicates, rendered point cloud, source against
    sampler, source not noise or chosen, scale, binary pixels)."""
    found = [near_duplicates(summary, figures), rendered(summary, figures), source_sampler_mismatch(summary, figures),
             source_not_noise(summary, figures), scale_mismatch(summary, figures),
             binary_pixels(summary, figures, binary_expected)]
    return [f for f in found if f is not None]


def near_duplicates(summary: Representation, figures: dict[str, str]) -> Finding | None:
    data = summary.checks.get("data")
    if data is None:
        return None
    dup = data.render.duplicates
    if dup.samples < MIN_COMPARED or dup.distinct_fraction > DATA_DISTINCT_WARNING:
        return None
    severity = "critical" if dup.distinct_fraction <= DATA_DISTINCT_CRITICAL else "warning"
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
        figure=figures.get("samples"),
    )

def rendered(summary: Representation, figures: dict[str, str]) -> Finding | None:
    roles = [role for role, checks in summary.checks.items() if checks.render.looks_rendered]
    if not roles:
        return None
    render = summary.checks[roles[0]].render
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
                  **{f"{role}_two_level": summary.checks[role].values.two_level for role in roles}},
        suggestion=("Represent the data as what it is: a sample is one 2D point and a batch of points is the "
                    "point cloud; the source is N(0, I) in 2D. Keep images only for data that are images."),
        figure=figures.get("samples"),
    )

def source_sampler_mismatch(summary: Representation, figures: dict[str, str]) -> Finding | None:
    differing = {label: c for label, c in summary.matches.items() if c.differs}
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
        evidence={label: comparison_numbers(c) for label, c in differing.items()},
        suggestion=("Draw the sampler's start with the same function as the training x0 (for example x0 = "
                    "sample_source(n) in both places), and declare it: Monitor(..., source=sample_source)."),
        figure=figures.get("sources"),
    )

def source_not_noise(summary: Representation, figures: dict[str, str]) -> Finding | None:
    source = summary.checks.get("source")
    if source is None or source.noise is None or source.noise.is_noise:
        return None
    noise = source.noise
    red_flag = source.render.looks_rendered or not noise.independent_ok
    if not red_flag and any(c.differs for c in summary.matches.values()):
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
                **{f"matches_{label}": not c.differs for label, c in summary.matches.items()}}
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
            figure=figures.get("qq"),
        )
    if summary.matches:
        checked = " and ".join("the sampler's first inputs" if label == "sampler" else "the declared source"
                               for label in summary.matches)
        return Finding(
            code="source-chosen", severity="info", title="The source is a chosen distribution, not N(0, I)",
            message=(numbers + f" Sampling starts from the same distribution ({checked} match the training "
                     "source), so this is a choice, not a bug: flow matching transports any source to the data. "
                     "The velocity probe's exact field uses the observed source rows instead of N(0, I)."),
            evidence=evidence, suggestion="Nothing to change if the source is the one you meant.",
            figure=figures.get("sources"),
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
        figure=figures.get("qq"),
    )

def scale_mismatch(summary: Representation, figures: dict[str, str]) -> Finding | None:
    scale, data = summary.scale, summary.checks.get("data")
    if scale is None or data is None or DATA_SCALE_LOW <= scale.ratio <= DATA_SCALE_HIGH:
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
        figure=figures.get("values"),
    )

def binary_pixels(summary: Representation, figures: dict[str, str], binary_expected: bool) -> Finding | None:
    data = summary.checks.get("data")
    if data is None or data.spread.dimension < MIN_SIGNAL_VALUES or not data.values.two_level:
        return None
    values = data.values
    return Finding(
        code="data-binary-pixels", severity="info" if binary_expected else "warning",
        title="The data values are black and white only",
        message=(f"{values.extreme_fraction:.1%} of the data values sit at the minimum {values.minimum:.4g} or "
                 f"the maximum {values.maximum:.4g} ({values.distinct} distinct values in {values.count}). "
                 "A distribution on the corners of a hypercube has no density for a continuous flow or "
                 "diffusion to match, and the rendering keeps only whether a pixel was hit, not how often."),
        evidence={"extreme_fraction": values.extreme_fraction, "distinct_values": values.distinct,
                  "minimum": values.minimum, "maximum": values.maximum, "values_examined": values.count},
        suggestion=("Use grey levels (for rendered points a normalised density, for images the original "
                    "intensities scaled to [-1, 1]), or a discrete model for binary data."),
        figure=figures.get("values"),
    )


def _shown(values: list[float]) -> str:
    return f"{values[0]:.3g}" if len(values) == 1 else "(" + ", ".join(f"{v:.3g}" for v in values) + ")"

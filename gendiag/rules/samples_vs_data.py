"""`samples-unlike-data`: the last samples against the data rows (`SampleGap`). Critical: the samples' overall
standard deviation over `SVD_SCALE_CRITICAL` times or under its inverse of the data's; or their mean more than
`SVD_OFFSET_CRITICAL` data spreads from the data's; or W2 over `SVD_W2_FLOOR_CRITICAL` times its floor and over
`SVD_W2_SPREAD_CRITICAL` spreads. Warning: the same at the `*_WARNING` limits, and (D <= 10) a coverage under
`SVD_COVERAGE_WARNING` of its floor with W2 over `SVD_COVERAGE_W2_FLOOR` floors. Each limit is held above
`SVD_FLOOR_MARGIN` times the data-vs-data deviation. With known modes or classes (`judge_cover` False) only samples
too wide or misplaced are judged (mean limit `SVD_OFFSET_WITH_MODES`), critical only; for a VAE (`judge_narrow`
False) samples narrower than the data are not faulted. The margins are in `gendiag.probes.samples_vs_data`."""

from __future__ import annotations

from gendiag.findings import Finding
from gendiag.metrics.samples_vs_data import LOW_DIM, SampleGap
from gendiag.rules.thresholds import (SVD_COVERAGE_W2_FLOOR, SVD_COVERAGE_WARNING, SVD_FLOOR_MARGIN,
                                      SVD_OFFSET_CRITICAL, SVD_OFFSET_WARNING, SVD_OFFSET_WITH_MODES,
                                      SVD_SCALE_CRITICAL, SVD_SCALE_WARNING, SVD_W2_FLOOR_CRITICAL,
                                      SVD_W2_FLOOR_WARNING, SVD_W2_SPREAD_CRITICAL, SVD_W2_SPREAD_WARNING)

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


def samples_unlike_data(gap: SampleGap | None, step: int | None, data_rows_seen: int, judge_cover: bool,
                        judge_narrow: bool, task: str, figure: str | None, guided: str | None = None) -> Finding | None:
    """The `samples-unlike-data` finding, or None. With `guided` (how classifier-free guidance is known) the samples
    are sharper and less diverse than the data by design (W2 and coverage against the data then say so, not a
    fault): only samples too wide or misplaced are judged."""
    if gap is None:
        return None
    if guided is not None:
        judge_cover, judge_narrow = False, False
    found = {"critical": reasons(gap, True, judge_cover, judge_narrow),
             "warning": reasons(gap, False, judge_cover, judge_narrow)}
    severity = "critical" if found["critical"] else "warning" if found["warning"] else None
    if severity is None:
        return None
    message = (f"The {gap.n_samples} generated samples (step {step}) do not look like the "
               f"{gap.n_data} data rows the loop showed: {'; '.join(long for _, long in found[severity])}. "
               f"For reference, data subsets of {gap.n_compared} rows give a std ratio within "
               f"{gap.std_ratio_floor:.2f}x and a mean offset of {gap.mean_offset_floor:.2f} spreads; in the "
               f"{gap.space}, W2 is {gap.w2:.3g} for the samples, {gap.w2_floor:.3g} for data against data and "
               f"{gap.w2_gaussian:.3g} for a Gaussian with the data's mean and covariance; the samples cover "
               f"{gap.coverage:.2f} of the data rows (data against data: {gap.coverage_floor:.2f}).")
    if not judge_cover and guided is None:
        message += (" (Which modes or classes the samples cover, and samples that shrink onto a few of them, "
                    "are judged by the mode-collapse probe; this finding is about samples too wide or misplaced.)")
    if guided is not None:
        message += (f" Sampling is guided ({guided}): guidance trades diversity for fidelity, so only samples too "
                    "wide or misplaced are judged here, not samples narrower than the data.")
    return Finding(
        code="samples-unlike-data", severity=severity,
        title=f"Generated samples do not look like the data ({found[severity][0][0]})",
        message=message, evidence={"step": step, **gap.as_dict(),
                                   "w2_over_floor": gap.w2_over_floor, "w2_over_spread": gap.w2_over_spread,
                                   "data_rows_seen": data_rows_seen, "judged_coverage": judge_cover,
                                   "guided": guided},
        suggestion=SAME_SPACE + SUGGESTIONS.get(task, GENERIC_SUGGESTION) + UNDERTRAINED, figure=figure,
    )


def reasons(gap: SampleGap, critical: bool, judge_cover: bool, judge_narrow: bool) -> list[tuple[str, str]]:
    """(short, long) descriptions of each limit of that severity the samples cross."""
    if not critical and not judge_cover:
        return []
    scale_limit = max(SVD_SCALE_CRITICAL if critical else SVD_SCALE_WARNING, gap.std_ratio_floor ** SVD_FLOOR_MARGIN)
    offset = (SVD_OFFSET_CRITICAL if critical else SVD_OFFSET_WARNING) if judge_cover else SVD_OFFSET_WITH_MODES
    offset_limit = max(offset, SVD_FLOOR_MARGIN * gap.mean_offset_floor)
    found = []
    if gap.std_ratio > scale_limit or (judge_narrow and gap.std_ratio * scale_limit < 1):  # 0: all alike
        found.append((f"std {gap.std_ratio:.2g}x the data's",
                      f"their standard deviation is {gap.std_ratio:.3g} times the data's (limit "
                      f"{scale_limit:.3g}x{' either way' if judge_narrow else ''})"))
    if gap.mean_offset > offset_limit:
        found.append((f"mean {gap.mean_offset:.2g} data spreads away",
                      f"their mean lies {gap.mean_offset:.3g} data spreads from the data's (limit "
                      f"{offset_limit:.3g})"))
    if not judge_cover:
        return found
    low = gap.dimension <= LOW_DIM
    floor_limit, spread_limit = ((SVD_W2_FLOOR_CRITICAL, SVD_W2_SPREAD_CRITICAL) if critical
                                 else (SVD_W2_FLOOR_WARNING, SVD_W2_SPREAD_WARNING))
    if (critical or low) and gap.w2_over_floor > floor_limit and gap.w2_over_spread > spread_limit:
        found.append((f"W2 {gap.w2_over_floor:.1f}x the data-vs-data floor",
                      f"W2 in the {gap.space} is {gap.w2:.3g}, {gap.w2_over_floor:.1f} times the data-vs-data "
                      f"floor and {gap.w2_over_spread:.2f} data spreads (limits {floor_limit:g}x and "
                      f"{spread_limit:g})"))
    if (not critical and low and gap.coverage < SVD_COVERAGE_WARNING * gap.coverage_floor
            and gap.w2_over_floor > SVD_COVERAGE_W2_FLOOR):
        found.append((f"coverage {gap.coverage:.2f} against {gap.coverage_floor:.2f}",
                      f"they cover {gap.coverage:.2f} of the data rows against {gap.coverage_floor:.2f} for "
                      f"data against data, with W2 {gap.w2_over_floor:.1f} times its floor"))
    return found

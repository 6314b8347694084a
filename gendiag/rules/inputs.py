"""Rule on the training and sampling inputs: `train-sample-input-mismatch`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gendiag.findings import Finding, advice
from gendiag.quantities.inputs import InputsComparison, number
from gendiag.quantities.time_scale import TimeScaleGap
from gendiag.rules.thresholds import (
    INPUTS_CRITICAL_RATIO, INPUTS_MIN_COEFFICIENT, INPUTS_REVERSED_SHARE, INPUTS_SIGNIFICANCE, INPUTS_STATIC_RATIO,
    INPUTS_TIME_SCALE_RATIO, INPUTS_WARNING_RATIO,
)

if TYPE_CHECKING:
    import pandas as pd

ADVICE = {  # `train-sample-input-mismatch`, by task: flow's x0 is the noise, diffusion's the data
    "flow": ("Feed the network the interpolant x_t = t*x1 + (1 - t)*x0 at the t you draw (not the source batch x0 or "
             "the data batch), with x0 drawn the way the sampler draws its start; check that the sampler integrates "
             "the same t direction the training uses."),
    "diffusion": ("Feed the network x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε (x0 the data batch, ε fresh N(0, I) noise) at "
                  "the t you draw, with t on the same scale the sampler passes (integer step or step / T) and ᾱ_t "
                  "from the same schedule; check that ᾱ_T is near 0, so that x_T looks like the N(0, I) noise the "
                  "sampler starts from."),
    "generic": ("Feed the network in training the inputs the sampler gives it: at each t, the data noised the way "
                "the sampler's path has it at that t, with the same noise and the same t convention (direction and "
                "scale) as the sampler."),
}


def inputs_findings(comparison: InputsComparison, task: str, figure: str | None,
                    guided: str | None = None) -> list[Finding]:
    """`train-sample-input-mismatch`: critical when the training inputs do not follow t (their change over t below
    INPUTS_STATIC_RATIO) or a material bin's ratio reaches INPUTS_CRITICAL_RATIO; a warning for a material bin over
    INPUTS_WARNING_RATIO (significant, energy coefficient >= INPUTS_MIN_COEFFICIENT); info where the gap is large
    only against a data set close to its source, or where sampling is guided (`guided`: how that is known), since
    classifier-free guidance extrapolates the state away from the training inputs by design (the training inputs'
    change over t, the t scale and the sampler's start are still judged). Nothing without the data–source scale."""
    if not comparison.reference:
        return []
    table = comparison.table
    scored = table.dropna(subset=["ratio"])
    bad = scored[(scored["ratio"] >= INPUTS_WARNING_RATIO) & (scored["p_value"] < INPUTS_SIGNIFICANCE)]
    material = bad[bad["coefficient"] >= INPUTS_MIN_COEFFICIENT]
    change = comparison.t_change
    static = change is not None and change["ratio"] < INPUTS_STATIC_RATIO
    if bad.empty and not static:
        return []
    worst = (bad if not bad.empty else scored).sort_values("ratio").iloc[-1]
    low, high = (float(worst["t_low"]), float(worst["t_high"])) if not bad.empty else change["high_bin"]
    model = comparison.model
    parts = []
    if static:
        parts.append(
            f"The training inputs of `{model}` hardly change with t: those with t in "
            f"[{change['low_bin'][0]:.2f}, {change['low_bin'][1]:.2f}] and in [{change['high_bin'][0]:.2f}, "
            f"{change['high_bin'][1]:.2f}] differ by only {change['ratio']:.2g} of the data–source distance, "
            "where any path from the source to the data changes them by about 1"
            + (f" (their mean sits at {change['progress_low']:.2f} and {change['progress_high']:.2f} on the line "
               "from the source mean, 0, to the data mean, 1)" if change["progress_low"] is not None else "")
            + ". The network is trained on one fixed set of inputs labelled with every t, never on the points a "
            "sampler must pass through on its way to the data.")
    if not bad.empty:
        progress = ""
        if number(worst["progress_train"]) is not None:
            progress = (f" On the line from the source mean (0) to the data mean (1), training inputs there sit at "
                        f"{worst['progress_train']:.2f} and sampling inputs at {worst['progress_sampling']:.2f}.")
        parts.append(
            f"For t in [{low:.2f}, {high:.2f}] the inputs fed to `{model}` while sampling are {worst['ratio']:.2f} "
            f"times as far (energy distance) from its training inputs as the data is from the source.{progress} "
            f"{len(bad)} of {len(scored)} bins of t exceed {INPUTS_WARNING_RATIO} (permutation p < {INPUTS_SIGNIFICANCE}).")
        if material.empty and not static:
            parts.append(
                f"The gap is small on the inputs' own scale, though: its energy coefficient is "
                f"{worst['coefficient']:.3f} (below {INPUTS_MIN_COEFFICIENT}; 0 for equal distributions, 1 for disjoint "
                "ones), and the ratio is large because the data lies close to the source. Worth a look only "
                "if the samples are poor.")
    reversed_end = reversed_direction(comparison.crossed)
    if reversed_end is not None:
        parts.append(
            f"The sampler runs t the other way round from training: its inputs at t in [{reversed_end['bin'][0]:.2f}, "
            f"{reversed_end['bin'][1]:.2f}] are {reversed_end['ratio']:.2f} of the data–source distance from "
            f"training's there but only {reversed_end['crossed_ratio']:.2f} from training's at t in "
            f"[{reversed_end['other_bin'][0]:.2f}, {reversed_end['other_bin'][1]:.2f}]. It integrates from the data "
            "end: it starts from noise at the t where training holds the data.")
    excused = guided is not None and reversed_end is None  # guidance explains a gap, not a sampler run backwards
    if excused and not bad.empty and not static:
        parts.append(f"Sampling is guided (known from {guided}): classifier-free guidance extrapolates from the "
                     "conditional and the null-condition outputs, which moves the sampler's state away from the "
                     "training inputs by design, more so the larger its scale; the gap is reported as info.")
    parts.append("A network is only right on inputs like those it was trained on.")
    evidence = {
        "worst_t_range": [round(low, 4), round(high, 4)],
        "worst_ratio": round(float(worst["ratio"]), 4),
        "worst_energy_distance": round(float(worst["energy"]), 4),
        "worst_p_value": round(float(worst["p_value"]), 4),
        "worst_coefficient": round(float(worst["coefficient"]), 4),
        "data_source_energy_distance": round(comparison.reference, 4),
        "t_ranges_over_threshold": [[round(float(a), 3), round(float(b), 3)]
                                    for a, b in zip(bad["t_low"], bad["t_high"])],
        "ratio_by_bin": ratios(table),
        "bins": bins(table),
        "progress_train_by_bin": [number(v) for v in table["progress_train"]],
        "progress_sampling_by_bin": [number(v) for v in table["progress_sampling"]],
        "train_change_over_t": None if change is None else round(change["ratio"], 4),
        "threshold_warning": INPUTS_WARNING_RATIO, "threshold_critical": INPUTS_CRITICAL_RATIO,
        "threshold_train_change": INPUTS_STATIC_RATIO, "significance": INPUTS_SIGNIFICANCE,
        "threshold_coefficient": INPUTS_MIN_COEFFICIENT, "guided": guided,
        "sampler_reversed": reversed_end is not None,
        "crossed_ratio_by_end": None if comparison.crossed is None else {
            end: round(values["crossed_ratio"], 4) for end, values in comparison.crossed.items()},
        "threshold_reversed": INPUTS_REVERSED_SHARE,
    }
    title = ("The network is trained on inputs that do not follow t" if static else
             f"The network meets different inputs in sampling than in training (t in [{low:.2f}, {high:.2f}])")
    return [Finding(
        code="train-sample-input-mismatch",
        severity=("critical" if static or (not excused and not material.empty
                                           and worst["ratio"] >= INPUTS_CRITICAL_RATIO) else
                  "warning" if not excused and not material.empty else "info"),
        title=title, message=" ".join(parts), evidence=evidence,
        suggestion=advice(ADVICE, task),
        figure=figure,
    )]


def reversed_direction(crossed: dict[str, Any] | None) -> dict[str, Any] | None:
    """The end of t where the sampler's inputs are far from training's (ratio at least INPUTS_WARNING_RATIO) and
    close to training's at the other end (under INPUTS_REVERSED_SHARE of that ratio): a sampler that runs t the
    other way round; None where neither end is."""
    for values in (crossed or {}).values():
        ratio, other = values["ratio"], values["crossed_ratio"]
        if ratio == ratio and ratio >= INPUTS_WARNING_RATIO and other < INPUTS_REVERSED_SHARE * ratio:
            return values
    return None


def ratios(table: "pd.DataFrame") -> list[float]:
    """Each bin's ratio, rounded to 4 places (NaN where a bin had too few rows)."""
    return table["ratio"].round(4).tolist()


def bins(table: "pd.DataFrame") -> list[list[float]]:
    """Each bin's [t_low, t_high], rounded to 4 places."""
    return [[round(float(a), 4), round(float(b), 4)] for a, b in zip(table["t_low"], table["t_high"])]


def time_scale_finding(model: str, gap: TimeScaleGap, task: str, figure: str | None) -> Finding:
    """Training and sampling feed t on different scales: every per-bin comparison would mix them, so this is the
    finding instead."""
    return Finding(
        code="train-sample-input-mismatch", severity="critical",
        title=f"The sampler passes `{model}` t on another scale than training ({gap.factor:.3g} times "
              f"{'larger' if gap.sampling_larger else 'smaller'})",
        message=(f"{gap.describe()} The network meets, in sampling, times it was never trained on, so its "
                 "prediction there is arbitrary whatever the inputs."),
        evidence={"train_t_max": round(gap.train_max, 6), "sampling_t_max": round(gap.sampling_max, 6),
                  "factor": round(gap.factor, 4), "schedule_steps": gap.schedule_steps,
                  "threshold_factor": INPUTS_TIME_SCALE_RATIO},
        suggestion=("Pass the network t on one scale in training and in sampling: the integer step the scheduler "
                    "uses (`scheduler.timesteps`, `torch.randint(0, T, ...)`) in both, or step / T in both. "
                    + advice(ADVICE, task)),
        figure=figure,
    )

"""`mode-collapse`: at the last observation some modes (classes) hold no high-quality sample (no sample) with
enough samples that an even generator would miss one with probability below `MODES_MISS_CHANCE`, or the
histogram's KL to uniform is above `MODES_KL_HIGH` and above its sampling noise (the G-test)."""

from __future__ import annotations

import math
from typing import Any

from gendiag.findings import Finding, advice
from gendiag.quantities.modes import CoverageTimeline, kl_noise, miss_chance
from gendiag.rules.thresholds import MODES_KL_HIGH, MODES_KL_NOISE_QUANTILE, MODES_MISS_CHANCE

ADVICE = {  # `mode-collapse`, by task
    "gan": ("Let the discriminator see several samples at once (PacGAN packing, or minibatch discrimination), or "
            "train with WGAN-GP; lower the learning rates (Adam β1 = 0.5) and keep D from overpowering G."),
    "vae": ("Look at the latent code: if the posterior collapsed (the decoder ignores z), lower the KL weight or "
            "anneal it from 0, use free bits, or weaken the decoder so that it must use z; draw samples by decoding "
            "z from the same N(0, I) prior the KL term pulls the posterior toward."),
    "diffusion": ("Train longer (rare modes are learned last), sample with more steps and from the same schedule "
                  "as training, starting from N(0, I) at the last step (check that the schedule reaches noise); "
                  "with guidance, lower the guidance scale."),
    "flow": ("Train longer (rare modes are learned last), integrate with more steps or a higher-order solver, "
             "starting from the same noise as training; with guidance, lower the guidance scale."),
    "generic": ("Check how samples are drawn (the prior or noise they start from, the number of sampling steps) and "
                "train longer: rare modes are learned last."),
}


def mode_collapse(timeline: CoverageTimeline, task: str, figure: str | None) -> Finding | None:
    """The `mode-collapse` finding for a timeline of known modes or of classes, or None."""
    if not len(timeline):
        return None
    unit, plural, n_units = timeline.unit, timeline.plural, timeline.n_units
    last = timeline.last
    coverage = last.coverage
    chance = miss_chance(n_units, last.n_samples)
    dropped = coverage.missing
    kl = coverage.kl_to_uniform
    judged_dropped = dropped if chance <= MODES_MISS_CHANCE else []
    in_histogram = int(coverage.counts.sum())
    noise = kl_noise(n_units, in_histogram, MODES_KL_NOISE_QUANTILE)
    kl_high = kl > max(MODES_KL_HIGH, noise)
    if not judged_dropped and not kl_high:
        return None
    since = {k: timeline.missing_since(k) for k in dropped}
    never = [k for k in dropped if timeline.never_covered(k)]
    covered = n_units - len(dropped)
    evidence: dict[str, Any] = {
        "step": last.step, "n_samples": last.n_samples, f"n_{plural}": n_units,
        f"{plural}_covered": covered, f"dropped_{plural}": dropped,
        "missing_since_step": {str(k): since[k] for k in dropped},
        "never_found" if unit == "class" else "never_captured": never,
        "reverse_kl" if unit == "mode" else "kl_to_uniform": kl, "kl_threshold": MODES_KL_HIGH,
        "kl_sampling_noise_99": round(noise, 4), "samples_in_histogram": in_histogram,
        "chance_even_generator_misses_one": round(chance, 6),
        "timeline_steps": timeline.steps,
        f"{plural}_covered_over_time": timeline.covered_over_time(),
    }
    if unit == "mode":
        evidence["high_quality_share"] = last.high_quality_share
    else:
        evidence["largest_share"] = coverage.largest_share
    parts = []
    if dropped:
        by_step: dict[int, list[int]] = {}
        for k in dropped:
            by_step.setdefault(since[k], []).append(k)
        listed = "; ".join(f"{unit} {', '.join(map(str, ks))} since step {s}" for s, ks in sorted(by_step.items()))
        parts.append(f"{len(dropped)} of {n_units} {plural} have no {'high-quality ' if unit == 'mode' else ''}"
                     f"sample: {listed}" + (f" ({len(never)} never covered at any observation)" if never else "")
                     + ".")
        if chance > MODES_MISS_CHANCE:
            parts.append(f"(With {last.n_samples} samples an even generator would also miss one with "
                         f"probability {chance:.0%}, so the dropped {plural} alone are not conclusive.)")
    kl_text = "reverse KL(P_gen || uniform)" if unit == "mode" else "KL(P_gen || uniform)"
    parts.append(f"The {kl_text} of the {unit} histogram is {fmt_kl(kl)} nats "
                 f"(threshold {max(MODES_KL_HIGH, noise):.3f}, the larger of {MODES_KL_HIGH} and the 99% sampling "
                 f"noise of {in_histogram} samples; {math.log(n_units):.2f} when everything falls on one {unit}).")
    severe = covered <= n_units / 2 or not math.isfinite(kl)
    return Finding(
        code="mode-collapse", severity="critical" if severe else "warning",
        title=_title(timeline, covered, kl_text, kl, kl_high),
        message=f"At step {last.step} ({last.n_samples} generated samples): " + " ".join(parts),
        evidence=evidence, figure=figure,
        suggestion=advice(ADVICE, task),
    )


def _title(timeline: CoverageTimeline, covered: int, kl_text: str, kl: float, kl_high: bool) -> str:
    """Names a collapse only when some part is missing; with every part covered the finding is an imbalance."""
    plural, n_units, step = timeline.plural, timeline.n_units, timeline.last.step
    if covered == n_units:
        return f"Uneven {plural}: all {n_units} {plural} covered at step {step}, but {kl_text} {fmt_kl(kl)}"
    return (f"Mode collapse: {covered} of {n_units} {plural} covered at step {step}"
            + (f", {kl_text} {fmt_kl(kl)}" if kl_high else ""))


def fmt_kl(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "inf (no high-quality sample)"

""""Why it collapses", written from the run's findings: each cause is told only when a finding backs it, quotes
that finding's evidence for every number a probe measured, and the causes come in the order of their findings'
severities (then of the findings' own order). Numbers no probe measures come from the recipe's `RunFacts`.

Also the symptoms table: the checkpoints' similarities to the target and to the start pictures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from gendiag.findings import SEVERITY_RANK, Finding
from gendiag.recipes.flattened.checkpoints import Checkpoint
from gendiag.recipes.flattened.facts import HIGH_T, SHARE_KEY, WEIGHT_KEY, RunFacts
from gendiag.rules.thresholds import STORY_RELAPSE, STORY_SAMPLER_STILL, STORY_UNREACHABLE

Found = dict[str, Finding]  # the first finding of each code in the run


@dataclass(frozen=True)
class Cause:
    """One cause the story can tell: the finding codes that back it and how to write it from them."""

    codes: tuple[str, ...]
    write: Callable[[Found, RunFacts], str]


def number(value: Any, spec: str) -> str:
    """`value` formatted by `spec`, or "not measured" where a finding holds none (NaN becomes None in JSON)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    return format(value, spec)


def evidence(found: Found, code: str, key: str, spec: str) -> str:
    """A number from finding `code`'s evidence, formatted."""
    return number(found[code].evidence.get(key), spec)


def _start(facts: RunFacts) -> str:
    return "a rendered source picture" if facts.source == "rendered_gaussian" else "pixel noise"


def _still_sampler(facts: RunFacts) -> str:
    """The symptom: how far the run's own sampler carried its state, and how large the network's output is."""
    return (f"The sampler hardly moves its state: the generated picture ends {facts.displacement:.1%} of the way "
            f"from its start ({_start(facts)}) towards the target (a displacement ratio of "
            f"{facts.displacement:.3f}; 1 would reach it). At a start picture the network's velocity has norm "
            f"{facts.output_norm[0.0]:.3g} at t = 0 and {facts.output_norm[0.5]:.3g} at t = 0.5, while the straight "
            f"path needs ‖target − start‖ ≈ {facts.gap:.3g} in total.")


def _frozen(found: Found, facts: RunFacts) -> str:
    ev = found["sampler-state-frozen"].evidence
    changes = [v for v in ev.get("largest_state_change", []) if v is not None]
    return (f"The sampler's state never moves: the frozen sampler assigns each Euler step to a new variable. Run "
            f"on the {ev.get('field', 'reference')} field, the state it passed to the field changed by at most "
            f"{number(max(changes, default=None), '.2g')} (relative RMS) over up to "
            f"{number(max(ev.get('field_calls', []), default=None), 'd')} calls, so sampling returns its start "
            f"(`sampler-state-frozen`). In this run the generated picture ends {facts.displacement:.1%} of the way "
            "from its start towards the target.")


def _stalled(found: Found, facts: RunFacts) -> str:
    ev = found["params-stalled"].evidence
    text = "" if facts.frozen or facts.displacement >= STORY_SAMPLER_STILL else _still_sampler(facts) + " "
    return text + (
        f"The learning rate decides this: with lr = {facts.lr:g}, Adam moves a weight by at most about lr per step, "
        f"{facts.lr * facts.iterations:.3g} over the {facts.iterations} iterations; the gradients probe measured a "
        f"median update of {evidence(found, 'params-stalled', 'update_ratio_median', '.2g')} of the weight matrices' "
        f"size per step, about {evidence(found, 'params-stalled', 'movement_over_run', '.2%')} over the run at that "
        "rate (`params-stalled`: the median step times the steps); measured at the end, the weights sit "
        f"{number(facts.weight_distance, '.2%')} of their size from where they started (‖θ − θ0‖ / ‖θ0‖, "
        f"`{WEIGHT_KEY}` in the results). So the network stays near its random initialisation, whose "
        "output is close to zero.")


def _off_path(found: Found, facts: RunFacts) -> str:
    ev = found["train-sample-input-mismatch"].evidence
    bins, train, sampling = ev.get("bins") or [], ev.get("progress_train_by_bin") or [], \
        ev.get("progress_sampling_by_bin") or []
    last = (f"t in [{bins[-1][0]:.2f}, {bins[-1][1]:.2f}]" if bins else "the last bin of t")
    progress = (f"Measured as progress from the source towards the data (0 at the source picture, 1 at the data), "
                f"the training inputs with {last} sat {number(train[-1] if train else None, '.3f')} of the way and "
                f"the sampler's inputs {number(sampling[-1] if sampling else None, '.3f')} "
                f"(`train-sample-input-mismatch`).")
    if facts.loss_kind != "buggy_x0":
        return ("The network meets other inputs in sampling than in training. " + progress +
                " Training feeds x_t = t·z + (1 − t)·x0, t of the way to the data; where the sampler's state "
                "does not follow, the network is evaluated where it was never trained.")
    text = ("The x_t bug: in training the network is only ever fed the source pictures x0, at every t, where x_t "
            "sits t of the way to the data. " + progress + " So the field is trained only at x0, never on the path "
            "a working sampler must walk.")
    if facts.displacement < STORY_SAMPLER_STILL:
        text += (" In this run the sampler itself hardly moved, so its inputs also stayed near the source; the "
                 "finding stands on the training inputs, which do not change with t (their change over t: "
                 f"{evidence(found, 'train-sample-input-mismatch', 'train_change_over_t', '.3g')}). The gap opens "
                 "once the learning rate lets the field move the state (run `flattened_moons_lr_only.yaml`).")
    drop = facts.peak.peak_cos_target - facts.peak.last_cos_target
    if drop >= STORY_RELAPSE:
        text += (f" The picture came closest to the target at iteration {facts.peak.iteration} (cosine "
                 f"{facts.peak.peak_cos_target:.3f}) and fell back to {facts.peak.last_cos_target:.3f} by the end "
                 f"while its cosine to the start picture rose from {facts.peak.peak_cos_source:.3f} to "
                 f"{facts.peak.last_cos_source:.3f}: off x0 the field is untrained, and its size follows whichever "
                 "t near 1 the last batches drew.")
    return text


def _ignores_t(found: Found, facts: RunFacts) -> str:
    finding = found["field-ignores-t"]
    text = (f"The learned velocity barely depends on t: at fixed inputs it changes "
            f"{evidence(found, 'field-ignores-t', 'sensitivity_t', '.3g')} times as much as the exact field's "
            f"(relative to its size) between t = 0 and t = 0.9 (`field-ignores-t`).")
    causes = [code for code in finding.consequence_of if code in found]
    if causes:
        text += " The findings mark it a likely consequence of " + ", ".join(f"`{code}`" for code in causes) + "."
    return text


def _exploding(found: Found, facts: RunFacts) -> str:
    parts = []
    if "target-explodes" in found:
        what = ("the original regresses on (z − x0)/(1 − t), where z is the data picture and x0 the source "
                "picture, and evaluates it at x0" if facts.loss_kind == "buggy_x0" else
                "the network regresses on a target that grows near t = 1")
        parts.append(
            f"The target explodes as t → 1: {what}. The probe's fit puts the "
            f"{found['target-explodes'].evidence.get('quantity', 'squared target size')} growing like "
            f"(1 − t)^{evidence(found, 'target-explodes', 'exponent', '.2f')}; at 1 − t ≈ "
            f"{evidence(found, 'target-explodes', 'outer_distance', '.2g')} its mean is "
            f"{evidence(found, 'target-explodes', 'outer_value', '.4g')}, "
            f"{evidence(found, 'target-explodes', 'ratio_to_median', '.3g')}× its median over t (`target-explodes`).")
    if "loss-t-imbalance" in found:
        ev = found["loss-t-imbalance"].evidence
        steps = ev.get("steps") or [None, None]
        bins = len(ev.get("loss_share_by_bin") or []) or "the"
        parts.append(
            f"In iterations {steps[0]}–{steps[1]} the draws with t in {ev.get('worst_loss_bin')} carried "
            f"{evidence(found, 'loss-t-imbalance', 'worst_loss_share', '.1%')} of the expected loss (one of "
            f"{bins} equal bins of t), so the batch loss (here "
            f"{facts.losses.min:.3g} to {facts.losses.max:.3g}, median {facts.losses.median:.3g}, last "
            f"{facts.losses.last:.3g}) measures which t the batch happened to draw, not progress, and its gradient is "
            f"steered by a handful of samples (`loss-t-imbalance`). Over all iterations the draws with t ≥ "
            f"{HIGH_T:g} carried {number(facts.loss_share_high_t, '.1%')} of the summed per-sample loss "
            f"(`{SHARE_KEY}` in the results).")
    return " ".join(parts)


def _one_picture(found: Found, facts: RunFacts) -> str:
    parts = []
    if "data-near-duplicates" in found:
        parts.append(
            f"The data set holds essentially one picture: of "
            f"{evidence(found, 'data-near-duplicates', 'samples_compared', 'd')} data images kept, about "
            f"{evidence(found, 'data-near-duplicates', 'effective_distinct', '.1f')} are distinct; two differ by a "
            f"median {evidence(found, 'data-near-duplicates', 'median_relative_distance', '.3f')} of a sample's own "
            f"spread (`data-near-duplicates`).")
    if "rendered-point-cloud" in found:
        parts.append(
            f"Every image is a {facts.points_per_image}-point rendering of the whole distribution: the pixel mass "
            f"sits in the same place in every image (centroids move "
            f"{evidence(found, 'rendered-point-cloud', 'centroid_spread', '.3f')} of the spatial spread) "
            "(`rendered-point-cloud`).")
    parts.append(f"In {facts.dim} dimensions a batch of {facts.batch_size} such images teaches a map from one "
                 "picture to one picture; the 2D distribution lives in the positions of the points, which the "
                 "rendering throws away.")
    if "data-binary-pixels" in found:
        parts.append(f"Pixels are pure black and white: "
                     f"{evidence(found, 'data-binary-pixels', 'extreme_fraction', '.1%')} of the values sit at the "
                     "minimum or the maximum (`data-binary-pixels`).")
    return " ".join(parts)


def _source(found: Found, facts: RunFacts) -> str:
    return (f"The source is a picture too, not noise: its values have mean "
            f"{evidence(found, 'source-not-noise', 'mean', '.3g')} and standard deviation "
            f"{evidence(found, 'source-not-noise', 'std', '.3g')} (N(0, I): 0 and 1) and take "
            f"{evidence(found, 'source-not-noise', 'distinct_values', 'd')} distinct values (`source-not-noise`). A "
            f"start picture and the target share cosine similarity {facts.baseline_cos:.3f} (binarised IoU "
            f"{facts.baseline_iou:.3f}) before any training, the level a generated picture falls back to when the "
            "flow does nothing.")


def _bottleneck(found: Found, facts: RunFacts) -> str:
    return (f"Time: preparing the data took {evidence(found, 'data-bottleneck', 'data_share', '.0%')} of the step "
            f"time ({evidence(found, 'data-bottleneck', 'ms_per_step_total', '.3g')} ms per step over "
            f"{evidence(found, 'data-bottleneck', 'steps_measured', 'd')} steps), rendering every image of every batch "
            "on the CPU; this slows the run but does not change what it learns (`data-bottleneck`).")


CAUSES = (
    Cause(("sampler-state-frozen",), _frozen),
    Cause(("params-stalled",), _stalled),
    Cause(("train-sample-input-mismatch",), _off_path),
    Cause(("field-ignores-t",), _ignores_t),
    Cause(("target-explodes", "loss-t-imbalance"), _exploding),
    Cause(("rendered-point-cloud", "data-near-duplicates", "data-binary-pixels"), _one_picture),
    Cause(("source-not-noise",), _source),
    Cause(("data-bottleneck",), _bottleneck),
)


def ranked_causes(findings: Sequence[Finding]) -> list[tuple[Cause, list[Finding]]]:
    """The causes some finding backs, with those findings, most severe backing finding first; among equals in the
    order the findings come in."""
    place: dict[str, tuple[int, int]] = {}  # code -> (severity rank, index) of its first finding
    for index, finding in enumerate(findings):
        place.setdefault(finding.code, (SEVERITY_RANK[finding.severity], index))
    told = [(cause, [c for c in cause.codes if c in place]) for cause in CAUSES]
    told = [(cause, codes) for cause, codes in told if codes]
    told.sort(key=lambda item: min(place[code] for code in item[1]))
    return [(cause, [f for f in findings if f.code in cause.codes]) for cause, _ in told]


def explain(findings: Sequence[Finding], facts: RunFacts) -> str:
    """The collapse in plain words: the causes the findings back, heaviest first, each quoting its findings'
    evidence; then what the recipe measured that no finding covers, what this run rules out, and the findings."""
    found: Found = {}
    for finding in findings:
        found.setdefault(finding.code, finding)
    causes = ranked_causes(findings)
    claims = [cause.write(found, facts) for cause, _ in causes]
    if not found.keys() & {"sampler-state-frozen", "params-stalled"} and facts.displacement < STORY_SAMPLER_STILL:
        claims.append(_still_sampler(facts) + " (Measured by the case; no finding of this run explains it.)")
    if facts.unreachable > STORY_UNREACHABLE:
        claims.append(
            f"The network cannot express the move: its last hidden layer has {facts.last_width} units, so its output "
            f"lies in a {facts.last_width + 1}-dimensional affine subspace of the {facts.dim}-dimensional image "
            f"space, and {facts.unreachable:.0%} of the energy of the needed displacement (target − start) lies "
            "outside it." + (" From pixel noise the velocity must cancel the noise in every pixel, which this "
                             "bottleneck cannot do: the samples keep their noise." if facts.source == "pixel_noise"
                             else "") + " (Measured by the case; no probe checks it.)")
    lines = ["The causes the probes' findings back come first, in the order of those findings' severity; then what "
             "the case measured itself. Each quotes the number measured in this run:", ""]
    lines += [f"{k}. {claim}" for k, claim in enumerate(claims, start=1)]
    if not claims:
        lines += ["No finding of this run backs a cause of the collapse, and the case's own measurements show none."]
    told = {code for cause, _ in causes for code in cause.codes}
    ruled_out = []
    if not facts.frozen and facts.displacement >= STORY_SAMPLER_STILL:
        ruled_out.append(f"a sampler that does not move: the state travels {facts.displacement:.0%} of the way to "
                         "the target.")
    if facts.loss_kind == "correct":
        ruled_out.append(f"the x_t bug: the network is fed x_t and its target z − x0 (z the data picture, x0 the "
                         f"source picture) keeps norm about {facts.pair_gap:.3g} at every t.")
    if ruled_out:
        lines += ["", "Ruled out in this run:", ""] + [f"- {item}" for item in ruled_out]
    backing = [f for f in findings if f.code in told]
    if backing:
        lines += ["", "The probes' findings behind these causes (details under Findings):", ""]
        lines += [f"- `{f.code}` ({f.severity}): {f.title}" for f in backing]
    if facts.resumed_at:
        lines += ["", f"(This run resumed at iteration {facts.resumed_at}: the probes' numbers and the loss cover "
                      "the iterations after it.)"]
    return "\n".join(lines)


def symptoms(checkpoints: list[Checkpoint], facts: RunFacts) -> str:
    """The checkpoints' similarities as a table, and which picture the last one resembles."""
    rows = ["| iteration | cos to target | cos to start | IoU to target | IoU to start |", "|---|---|---|---|---|"]
    rows += [f"| {c.iteration} | {c.cos_target:.3f} | {c.cos_source:.3f} | {c.iou_target:.3f} | {c.iou_source:.3f} |"
             for c in checkpoints]
    first, last = checkpoints[0], checkpoints[-1]
    verdict = ("closer to its start picture than to the target: the collapse"
               if last.cos_source > last.cos_target else "closer to the target than to its start picture")
    return "\n".join([
        f"Each checkpoint generates {len(last.images)} images, each from its own fixed start picture, with the "
        "case's sampler. Similarity is the cosine of the flattened images and the IoU of the pixels above half "
        "the target's peak value, averaged over the images; *to target* compares with one fixed data image, "
        "*to start* with the picture each image was generated from. Before training a start picture and the "
        f"target already share cosine {facts.baseline_cos:.3f} (IoU {facts.baseline_iou:.3f}).", "",
        *rows, "",
        f"From iteration {first.iteration} to {last.iteration} the cosine to the target went "
        f"{first.cos_target:.3f} → {last.cos_target:.3f} and to the start {first.cos_source:.3f} → "
        f"{last.cos_source:.3f}; the last generated picture is {verdict}."])

"""Rules on conditions: `conditioning-ignored` (samples do not follow the condition asked for) and
`null-label-untrained` (guided sampling uses a null condition that training never showed the network)."""

from __future__ import annotations

from typing import Hashable

from gendiag.findings import Finding
from gendiag.quantities.conditioning import NONE, ZEROS, Agreement, LabelCounts
from gendiag.rules.thresholds import (
    CONDITIONING_CRITICAL_SCORE, CONDITIONING_LABELS_AT_CHANCE, CONDITIONING_MIN_MARGIN,
    CONDITIONING_MIN_ROWS_PER_CLASS, CONDITIONING_MIN_SAMPLES, CONDITIONING_WARNING_SCORE,
    NULL_MIN_TRAIN_ROWS, NULL_TRAIN_SHARE,
)

IGNORED_ADVICE = (
    "Check that each training row reaches the network with its own label: labels shuffled apart from their rows (a "
    "second shuffle, a label list indexed in another order than the data, a dataset whose labels were permuted) "
    "leave nothing to learn from the condition. In a conditional GAN give the discriminator the label the generator "
    "was asked for with each fake and the true label with each real row (not a fresh random label, nor the labels of "
    "another batch). Check too that the network uses its condition input at all (an embedding added to the input, "
    "not dropped) and that the sampler passes the labels it reports to `observe_samples`.")
NULL_ADVICE = (
    "Train the null condition that guided sampling uses: replace the label by the null label on a share of the "
    "training rows (label dropout, p = 0.1 is usual), e.g. `y = torch.where(torch.rand(len(y)) < 0.1, null, y)`, with "
    "the same null value (or None, or an all-zero one-hot row) as the sampler passes; or sample without guidance.")


def conditioning_ignored(agreement: Agreement | None, figure: str | None = None) -> list[Finding]:
    """`conditioning-ignored`: critical where the data's own labels are within CONDITIONING_LABELS_AT_CHANCE of
    chance (over at least CONDITIONING_MIN_ROWS_PER_CLASS rows per class: labels shuffled apart from their rows);
    else critical where the samples' score (see `Agreement.score`) is below
    CONDITIONING_CRITICAL_SCORE, a warning below CONDITIONING_WARNING_SCORE; judged on at least
    CONDITIONING_MIN_SAMPLES labelled samples, where the data's own agreement exceeds chance by CONDITIONING_MIN_MARGIN.
    `figure`: the path of the figure that shows the agreement, named in the finding."""
    if agreement is None:
        return []
    if labels_at_chance(agreement):
        return [_labels_at_chance(agreement, figure)]
    if agreement.samples < CONDITIONING_MIN_SAMPLES or agreement.data_rate - agreement.chance < CONDITIONING_MIN_MARGIN:
        return []
    score = agreement.score
    if score is None or score >= CONDITIONING_WARNING_SCORE:
        return []
    elsewhere = {asked: row["most_assigned"] for asked, row in agreement.per_class.items()
                 if row["most_assigned"] != asked}
    detail = ""
    if score < -CONDITIONING_CRITICAL_SCORE and elsewhere:  # clearly below chance, not within its noise
        shown = ", ".join(f"{asked} → {other}" for asked, other in sorted(elsewhere.items())[:6])
        detail = (f" Below chance: the samples follow another condition than the one asked for (asked → most often "
                  f"given: {shown}), as when D is shown other labels than G was asked for.")
    message = (f"Of {agreement.samples} samples, {agreement.sample_rate:.0%} land in the class they were asked for "
               f"({agreement.method} on the data kept per class), where chance over {agreement.classes} classes is "
               f"{agreement.chance:.0%} and the data's own rows reach {agreement.data_rate:.0%}: the samples follow "
               f"their condition {score:.2f} of the way from chance to the data.{detail} A conditional model whose "
               "samples do not depend on their condition learned the data without its labels.")
    return [Finding(
        code="conditioning-ignored",
        severity="critical" if score < CONDITIONING_CRITICAL_SCORE else "warning",
        title=f"Samples do not follow their condition ({agreement.sample_rate:.0%} in the class asked for, chance "
              f"{agreement.chance:.0%})",
        message=message,
        evidence={"method": agreement.method, "samples": agreement.samples, "classes": agreement.classes,
                  "agreement": round(agreement.sample_rate, 4), "data_agreement": round(agreement.data_rate, 4),
                  "chance": round(agreement.chance, 4), "score": round(score, 4),
                  "per_class": {str(k): v for k, v in sorted(agreement.per_class.items())},
                  "threshold_warning": CONDITIONING_WARNING_SCORE,
                  "threshold_critical": CONDITIONING_CRITICAL_SCORE},
        figure=figure,
        suggestion=IGNORED_ADVICE,
    )]


def labels_at_chance(agreement: Agreement) -> bool:
    """Whether the data's own labels are within CONDITIONING_LABELS_AT_CHANCE of chance, over at least
    CONDITIONING_MIN_ROWS_PER_CLASS rows per class."""
    return (agreement.data_rate - agreement.chance < CONDITIONING_LABELS_AT_CHANCE
            and agreement.data_rows_per_class >= CONDITIONING_MIN_ROWS_PER_CLASS)


def _labels_at_chance(agreement: Agreement, figure: str | None) -> Finding:
    """The data's own labels do not tell its rows apart: nothing to condition on."""
    samples = (f" The samples land in the class asked for {agreement.sample_rate:.0%} of the time."
               if agreement.samples else "")
    return Finding(
        code="conditioning-ignored", severity="critical",
        title=f"The labels given with the data do not tell its rows apart ({agreement.data_rate:.0%}, chance "
              f"{agreement.chance:.0%})",
        message=(f"Each data row, assigned the class of its nearest rows ({agreement.method}, at least "
                 f"{agreement.data_rows_per_class} rows kept per class), lands in the class it was given "
                 f"{agreement.data_rate:.0%} of the time, where chance over {agreement.classes} classes is "
                 f"{agreement.chance:.0%}: the rows of every class look alike, so the labels carry nothing a model "
                 f"could follow.{samples} Labels shuffled apart from their rows do this."),
        evidence={"method": agreement.method, "samples": agreement.samples, "classes": agreement.classes,
                  "agreement": round(agreement.sample_rate, 4), "data_agreement": round(agreement.data_rate, 4),
                  "chance": round(agreement.chance, 4), "data_rows_per_class": agreement.data_rows_per_class,
                  "threshold_labels_at_chance": CONDITIONING_LABELS_AT_CHANCE},
        figure=figure,
        suggestion=IGNORED_ADVICE,
    )


def null_label_untrained(model: str, counts: LabelCounts, null: Hashable, how: str,
                         figure: str | None = None) -> list[Finding]:
    """`null-label-untrained` (critical): the null condition is on sampling rows but on at most NULL_TRAIN_SHARE of
    at least NULL_MIN_TRAIN_ROWS recorded training rows. `figure`: the path of the figure of the conditions'
    counts, named in the finding."""
    in_sampling, in_training = counts.sampling[null], counts.train[null]
    trained = sum(counts.train.values())
    if not in_sampling or trained < NULL_MIN_TRAIN_ROWS or in_training > NULL_TRAIN_SHARE * trained:
        return []
    named = {NONE: "no condition (None)", ZEROS: "the all-zero one-hot condition"}.get(null, f"the null label {null}")
    return [Finding(
        code="null-label-untrained", severity="critical",
        title=f"Guided sampling calls `{model}` with {named}, which training never gave it",
        message=(f"{in_sampling} of {sum(counts.sampling.values())} recorded sampling rows of `{model}` carry "
                 f"{named} (known from {how}), against {in_training} of {trained} recorded training rows. "
                 "Classifier-free guidance extrapolates from the network's output under the null condition; "
                 "untrained, that output is arbitrary, and so is every guided step."),
        evidence={"model": model, "null": str(null), "known_from": how, "null_in_training": in_training,
                  "training_rows": trained, "null_in_sampling": in_sampling,
                  "sampling_rows": sum(counts.sampling.values()), "threshold_share": NULL_TRAIN_SHARE,
                  "min_training_rows": NULL_MIN_TRAIN_ROWS},
        figure=figure,
        suggestion=NULL_ADVICE,
    )]

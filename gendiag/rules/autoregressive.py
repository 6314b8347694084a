"""Rules of the autoregressive task: `causal-leak`, `train-sample-input-mismatch` (a sampler that feeds the network
values it never saw in training) and `ar-samples-identical`."""

from __future__ import annotations

import numpy as np

from gendiag.findings import Finding
from gendiag.quantities.autoregressive import NetworkCheck, Summary
from gendiag.rules.thresholds import (
    AR_DISTINCT_RATIO, AR_LEAK_TOLERANCE, AR_LOSS_FLOOR_FRACTION, AR_MIN_SAMPLES, AR_OFF_LEVEL_SHARE,
    AR_OFFSET_MARGIN,
)

MIN_SAMPLED_POSITIONS = 20  # the sampler's last inputs are judged only where one undrawn position is under 5%

LEAK_ADVICE = {
    "image": ("Hide each pixel from its own prediction: the first masked convolution takes mask A (the centre "
              "pixel masked too), the later ones mask B, and the mask multiplies the weight at every forward "
              "(weight * mask), not once at initialisation."),
    "own": ("Shift the targets by one: the output at position i must predict the token at i + 1, for example "
            "logits = model(x[:, :-1]); loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])."),
    "later": ("Let no position see later ones: a causal mask in attention (is_causal=True or a triangular mask), a "
              "one-directional RNN, masked convolutions; then shift the targets by one."),
}


def target_offset(check: NetworkCheck) -> tuple[int, str]:
    """Where the network's targets sit relative to its inputs (0: its own position, 1: the next one) and how that was
    decided: read from the recorded outputs where one offset's cross-entropy is clearly lower, else the convention
    of the layout (images: own position, sequences: the next one)."""
    ce = check.offsets
    if ce is not None and ce[0] < (1 - AR_OFFSET_MARGIN) * ce[1]:
        return 0, "measured"
    if ce is not None and ce[1] < (1 - AR_OFFSET_MARGIN) * ce[0]:
        return 1, "measured"
    return (0 if check.kind == "image" else 1), "convention"


def worst_leak(check: NetworkCheck, offset: int) -> dict | None:
    """The check, tested position and change (over the output's spread) where the output whose target is input p
    moves most when only inputs from p on change; None where no check could be read."""
    worst = None
    for dependence in check.checks:
        if dependence.scale <= 0:
            continue
        for row, position in enumerate(dependence.positions):
            at = position - offset
            if not 0 <= at < dependence.own.shape[1]:
                continue
            own = float(dependence.own[row, at]) / dependence.scale
            if worst is None or own > worst["own"]:
                worst = {"step": dependence.step, "input_position": position, "output_position": at, "own": own,
                         "later": float(dependence.later[row, at]) / dependence.scale}
    return worst


def causal_leak(summary: Summary, figures: dict[str, str]) -> Finding | None:
    """`causal-leak` (critical): a watched network's output moves when only the input it predicts or later ones
    change (by more than AR_LEAK_TOLERANCE of its spread), or the loss is below AR_LOSS_FLOOR_FRACTION of the
    entropy the user gave."""
    parts, evidence, advice = [], {}, []
    for check in summary.networks:
        offset, basis = target_offset(check)
        worst = worst_leak(check, offset)
        if worst is None or worst["own"] <= AR_LEAK_TOLERANCE:
            continue
        sees_later = worst["later"] > AR_LEAK_TOLERANCE
        target = "its own position" if offset == 0 else "the next position"
        read = ("read from what the network learned: " + ", ".join(f"cross-entropy {v:.3g} at offset {k}"
                                                                   for k, v in check.offsets.items())
                if basis == "measured" else "the convention for this layout")
        parts.append(
            f"The output of `{check.model}` at position {worst['output_position']}, which predicts the input at "
            f"{target} ({worst['input_position']}; {read}), moves by {worst['own']:.3g} of the output's spread when "
            f"only the inputs from position {worst['input_position']} on change (step {worst['step']}; a causal "
            f"network's does not move, under {AR_LEAK_TOLERANCE:g}): "
            + ("it sees later positions too (a change strictly after them moves it by "
               f"{worst['later']:.3g})." if sees_later else
               "it sees the very value it is trained to predict, and learns to copy it."))
        evidence[check.model] = {**worst, "target_offset": offset, "offset_basis": basis,
                                 "offset_cross_entropy": check.offsets, "layout": check.kind}
        advice.append(LEAK_ADVICE["later"] if sees_later else
                      LEAK_ADVICE["image"] if check.kind == "image" else LEAK_ADVICE["own"])
    floor = loss_floor(summary)
    if floor is not None:
        loss, entropy = floor
        parts.append(f"The training loss, {loss:.4g} nats per position over the last steps, is {loss / entropy:.2g} "
                     f"of the data's entropy {entropy:.4g} (given as the fact `entropy`): no model that predicts a "
                     "value from the ones before it gets below the entropy, let alone below "
                     f"{AR_LOSS_FLOOR_FRACTION:g} of it.")
        evidence["loss"] = {"loss_per_position": loss, "entropy_per_position": entropy, "ratio": loss / entropy}
        if not advice:  # the network check, where it ran, already named the cause
            advice.append(LEAK_ADVICE["own"] + " For masked convolutions: " + LEAK_ADVICE["image"])
    if not parts:
        return None
    return Finding(
        code="causal-leak", severity="critical",
        title="The model sees the value it is asked to predict",
        message=" ".join(parts) + (" Training then rewards copying the input, the loss falls far below what any "
                                   "model can reach, and sampling, where that value is not there yet, fails."),
        evidence=evidence, suggestion=" ".join(dict.fromkeys(advice)),  # one advice per cause
        figure=figures.get("causal") if set(evidence) - {"loss"} else figures.get("loss"),
    )


def loss_floor(summary: Summary) -> tuple[float, float] | None:
    """(mean loss per position, mean entropy per position) where the loss is below AR_LOSS_FLOOR_FRACTION of the
    given entropy, else None."""
    if summary.entropy is None or summary.loss is None:
        return None
    entropy = float(np.mean(summary.entropy))
    loss = float(np.mean(summary.loss))
    if entropy <= 0 or loss >= AR_LOSS_FLOOR_FRACTION * entropy:
        return None
    return loss, entropy


def sample_inputs(summary: Summary, figure: str | None = None) -> Finding | None:
    """`train-sample-input-mismatch` (critical): more than AR_OFF_LEVEL_SHARE of the observed samples' values, or of
    the sampler's last inputs in a run, lie off every level of the training values."""
    samples = summary.samples_off_level
    judged = [share for share in summary.sampling_off_level] \
        if summary.sampling_positions >= MIN_SAMPLED_POSITIONS else []
    worst_input = max(judged, default=None)
    if (samples is None or samples <= AR_OFF_LEVEL_SHARE) and (worst_input is None
                                                              or worst_input <= AR_OFF_LEVEL_SHARE):
        return None
    if summary.levels is None:  # the training values stopped being discrete after the shares were measured
        return None
    shown = ", ".join(f"{level:.4g}" for level in summary.levels[:6]) + (", ..." if len(summary.levels) > 6 else "")
    seen = []
    if samples is not None:
        seen.append(f"{samples:.1%} of the generated samples' values")
    if worst_input is not None:
        seen.append(f"{worst_input:.1%} of the values the sampler fed the network in its last call of a run")
    return Finding(
        code="train-sample-input-mismatch", severity="critical",
        title="The sampler feeds the network values it never saw in training",
        message=(f"{' and '.join(seen).capitalize()} lie between the levels the training values take ({shown}). "
                 "The sampler writes something other than drawn values back into the sequence (a probability, a "
                 "mean): the network is conditioned on inputs it never saw in training, and without a draw every "
                 "sample follows the same deterministic path."),
        evidence={"samples_off_level_share": samples, "sampler_inputs_off_level_share": worst_input,
                  "training_levels": summary.levels[:16], "runs_judged": len(judged)},
        figure=figure,
        suggestion=("Draw each value and write the draw back: x[:, i] = torch.bernoulli(p) for binary values, "
                    "torch.multinomial(probs, 1) for categorical ones (256 levels: the drawn level / 255)."),
    )


def samples_identical(summary: Summary, figure: str | None = None) -> Finding | None:
    """`ar-samples-identical`: critical when all of at least AR_MIN_SAMPLES samples are one, a warning when their
    share of distinct rows is under AR_DISTINCT_RATIO of the data's over as many rows."""
    n = summary.samples
    if n < AR_MIN_SAMPLES or summary.data_distinct is None or summary.data_compared < 2:
        return None
    data_share = summary.data_distinct / summary.data_compared
    share = summary.samples_distinct / n
    if summary.data_distinct < 2 or share >= AR_DISTINCT_RATIO * data_share:
        return None
    severity = "critical" if summary.samples_distinct == 1 else "warning"
    return Finding(
        code="ar-samples-identical", severity=severity,
        title=("All generated samples are identical" if severity == "critical"
               else f"Only {summary.samples_distinct} of {n} generated samples differ"),
        message=(f"{summary.samples_distinct} distinct samples in {n}, against {summary.data_distinct} distinct "
                 f"rows in {summary.data_compared} of the data. An autoregressive sampler makes different samples "
                 "only by drawing each value from the predicted distribution; taking the most likely value (argmax, "
                 "p > 0.5), writing probabilities back, or reusing one random stream for every sample makes the "
                 "same sample again."),
        evidence={"samples": n, "distinct_samples": summary.samples_distinct, "data_rows": summary.data_compared,
                  "distinct_data_rows": summary.data_distinct},
        figure=figure,
        suggestion=("Draw every value: torch.bernoulli(p) or torch.multinomial(probs, 1) (with a temperature if you "
                    "want sharper samples), never argmax or a threshold, with fresh random numbers for each sample."),
    )


def autoregressive_findings(summary: Summary, figures: dict[str, str]) -> list[Finding]:
    """Every rule of the autoregressive probe on one summary."""
    found = [causal_leak(summary, figures), sample_inputs(summary, figures.get("inputs")),
             samples_identical(summary, figures.get("distinct"))]
    return [finding for finding in found if finding is not None]

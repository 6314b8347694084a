"""Findings: what a probe concludes, with the numbers and the figure that back it; and the order a report
shows them in: most severe first, causes before what they explain.

Every finding code belongs to a stage of the pipeline, data and set-up → optimisation → model → samples, so that
among findings of one severity the earlier cause comes first. A short table of known cause → consequence relations
(`CONSEQUENCES`) marks, once all probes have spoken, a finding that another finding of the same run likely explains
(`link_consequences`); `sort_findings` then puts it right after its cause."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("critical", "warning", "info")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

# Every code by stage, in the order a cause comes before what it may explain (`samples-unlike-data` is the
# samples-vs-data probe's). Codes not listed (`probe-failed`, `probe-not-run` and `batch-skipped`, about the
# diagnosis rather than the training, and any code of a user's own probe) come after them all.
STAGES: dict[str, tuple[str, ...]] = {
    "data and set-up": ("data-nonfinite", "rendered-point-cloud", "data-near-duplicates", "data-binary-pixels",
                        "data-scale-mismatch", "source-not-noise", "source-sampler-mismatch", "source-chosen",
                        "schedule-not-reaching-noise",
                        "forward-process-off-schedule", "bce-target-out-of-range", "target-explodes",
                        "loss-at-baseline", "t-range-untrained", "null-label-untrained", "train-sample-input-mismatch",
                        "data-bottleneck", "causal-leak", "ddp-same-noise-across-ranks",
                        "distributed-sampler-epoch-unset"),
    "optimisation": ("grad-accumulating", "gan-d-output-squashed", "loss-unbounded-below", "loss-nonfinite",
                     "outputs-nonfinite", "no-gradient-reaches", "lr-decayed-to-zero", "weight-decay-dominates",
                     "params-stalled", "gradients-not-seen", "loss-diverging", "loss-t-imbalance",
                     "gan-g-objective-inverted", "gan-d-dominates", "gan-oscillation"),
    "model": ("vae-decoder-output-squashed", "posterior-collapse", "field-ignores-x", "field-ignores-t", "ema-lagging"),
    "samples": ("samples-nonfinite", "sampler-state-frozen", "sampler-parameterization-mismatch",
                "sampler-schedule-misindexed", "samples-unlike-data", "conditioning-ignored", "mode-collapse",
                "memorization",
                "ar-samples-identical"),
}
_CODE_RANK = {code: (stage, place) for stage, codes in enumerate(STAGES.values()) for place, code in enumerate(codes)}

# cause -> {consequence: why the cause likely produces it}. Only relations the probes' own measurements support:
# fixing the cause removes the consequence's measured symptom.
CONSEQUENCES: dict[str, dict[str, str]] = {
    "data-nonfinite": {
        "loss-nonfinite": "a NaN in the training batch makes the loss NaN",
        "outputs-nonfinite": "a NaN in the training batch makes the network's outputs NaN",
        "samples-nonfinite": "weights trained on NaN data are NaN, and so are the samples",
    },
    "loss-nonfinite": {
        "samples-nonfinite": "a NaN loss makes the weights NaN through the next optimizer step, and the samples follow",
    },
    "outputs-nonfinite": {
        "samples-nonfinite": "a network whose outputs overflow in training gives NaN samples too",
    },
    "rendered-point-cloud": {
        "data-near-duplicates": "pictures of one whole point cloud are near-copies of one another",
        "data-binary-pixels": "a rendering marks only whether a pixel was hit",
    },
    "source-not-noise": {
        "train-sample-input-mismatch": "training starts its inputs from a source unlike the noise the sampler draws",
    },
    "source-sampler-mismatch": {
        "train-sample-input-mismatch": "the sampler starts from another distribution than the source seen in training",
        "samples-unlike-data": "the sampler starts from another distribution than the one the model learned to move",
    },
    "schedule-not-reaching-noise": {
        "train-sample-input-mismatch": "training inputs keep much of the data at the last step, while the sampler "
                                       "starts there from pure N(0, I) noise",
        "mode-collapse": "sampling starts from noise the model never saw at the last step, and the samples inherit "
                         "that error",
        "samples-unlike-data": "sampling starts from noise the model never saw at the last step, and the samples "
                               "inherit that error",
    },
    "forward-process-off-schedule": {
        "train-sample-input-mismatch": "training inputs follow another process than the one the sampler undoes",
        "samples-unlike-data": "the sampler undoes a forward process the network was not trained on",
        "mode-collapse": "the sampler undoes a forward process the network was not trained on",
    },
    "bce-target-out-of-range": {
        "loss-unbounded-below": "a binary cross-entropy with targets outside [0, 1] has no floor",
        "loss-nonfinite": "a binary cross-entropy with targets outside [0, 1] falls until it overflows",
        "samples-unlike-data": "the decoder is pushed to 0 or 1 wherever a target lies outside [0, 1]",
    },
    "loss-at-baseline": {
        "field-ignores-x": "a network whose target does not depend on its input learns the target's mean",
        "samples-unlike-data": "a network whose target does not depend on its input learns only the target's mean",
        "mode-collapse": "a network whose target does not depend on its input learns only the target's mean",
    },
    "vae-decoder-output-squashed": {
        "samples-unlike-data": "a decoder confined to [0.5, 0.73] cannot produce the data's dark or bright values",
    },
    "sampler-parameterization-mismatch": {
        "samples-unlike-data": "the sampler reads the network's output as another quantity than it learned",
        "mode-collapse": "the sampler reads the network's output as another quantity than it learned",
    },
    "sampler-schedule-misindexed": {
        "samples-unlike-data": "the sampler's last step puts noise back into the samples",
        "mode-collapse": "the sampler's last step puts noise back into the samples",
    },
    "target-explodes": {
        "loss-nonfinite": "a target that grows without bound near one end of t overflows",
        "loss-diverging": "a target that grows without bound near one end of t makes the loss jump",
    },
    "grad-accumulating": {
        "loss-nonfinite": "a gradient that sums every earlier step's grows until the weights overflow",
        "loss-diverging": "a gradient that sums every earlier step's makes ever larger steps",
        "field-ignores-x": "steps along the sum of all earlier gradients follow the mean gradient, not this batch's",
        "field-ignores-t": "steps along the sum of all earlier gradients follow the mean gradient, not this batch's",
        "gan-d-dominates": "a player whose steps sum all its earlier gradients cannot follow the other",
        "gan-oscillation": "a player whose steps sum all its earlier gradients overshoots",
        "mode-collapse": "a network trained on summed stale gradients does not learn the data",
        "samples-unlike-data": "a network trained on summed stale gradients does not learn the data",
    },
    "gan-d-output-squashed": {
        "params-stalled": "through two sigmoids the gradients are small, so the weights barely move",
        "gan-d-dominates": "the discriminator's outputs, read through a second sigmoid, do not mean what they seem",
        "loss-diverging": "D's loss has a floor it cannot go below",
        "mode-collapse": "the generator's gradient through two sigmoids vanishes, so it cannot learn the modes",
        "samples-unlike-data": "the generator's gradient through two sigmoids vanishes, so it cannot learn the data",
    },
    "loss-unbounded-below": {
        "loss-nonfinite": "a loss without a floor falls until it overflows",
        "posterior-collapse": "the optimizer follows the term without a floor, not the data",
        "mode-collapse": "the optimizer follows the term without a floor, not the data",
        "samples-unlike-data": "the optimizer follows the term without a floor, not the data",
    },
    "no-gradient-reaches": {
        "loss-diverging": "a network that receives no gradient does not lower its loss",
        "gan-d-dominates": "a generator that receives no gradient cannot answer the discriminator",
        "field-ignores-x": "a network that receives no gradient stays as it was initialised",
        "field-ignores-t": "a network that receives no gradient stays as it was initialised",
        "mode-collapse": "a network that receives no gradient cannot learn the modes",
        "samples-unlike-data": "a network that receives no gradient cannot learn the data",
    },
    "params-stalled": {
        "gan-d-dominates": "a generator whose weights do not train cannot answer the discriminator",
        "loss-diverging": "a network whose weights do not train does not lower its loss",
        "samples-unlike-data": "a model whose weights do not train cannot learn the data",
        "field-ignores-x": "weights that do not train leave the field as it was at initialisation",
        "field-ignores-t": "weights that do not train leave the field as it was at initialisation",
        "mode-collapse": "a model whose weights do not train cannot learn the modes",
        "samples-unlike-data": "a model whose weights do not train cannot learn the data",
    },
    "posterior-collapse": {
        "mode-collapse": "a decoder that ignores the latent code gives every sample the same output",
        "samples-unlike-data": "a decoder that ignores the latent code gives every sample the same output",
    },
    "field-ignores-x": {
        "mode-collapse": "a field that does not look at x moves every sample the same way",
    },
    "t-range-untrained": {
        "train-sample-input-mismatch": "training inputs exist for only part of the sampler's range of t, so they "
                                       "hardly change over t and the sampler meets inputs training never had",
        "samples-unlike-data": "the sampler calls the network at times it was never trained on",
        "mode-collapse": "the sampler calls the network at times it was never trained on",
    },
    "sampler-state-frozen": {
        "mode-collapse": "a sampler whose state does not move returns the noise it started from",
        "samples-unlike-data": "a sampler whose state does not move returns the noise it started from",
    },
    "causal-leak": {
        "samples-unlike-data": "a network that learned to copy the value it predicts has nothing to copy when sampling",
    },
    "lr-decayed-to-zero": {
        "params-stalled": "a learning rate of about 0 leaves the weights where they are",
    },
    "gan-g-objective-inverted": {
        "gan-d-dominates": "a generator trained to make its samples easy to reject hands the discriminator its win",
        "mode-collapse": "a generator minimising the wrong objective does not learn the data's modes",
        "samples-unlike-data": "a generator minimising the wrong objective does not learn the data",
    },
    "train-sample-input-mismatch": {
        "ar-samples-identical": "a sampler that writes probabilities back instead of draws follows one deterministic "
                                "path for every sample",
    },
}


@dataclass
class Finding:
    """One diagnosis: a stable code, how bad it is, what it means, the evidence and what to change.

    `evidence` holds plain numbers, lists and short strings measured in the run (steps, t ranges, ratios);
    `figure` is the path of the figure that shows it, relative to the run folder; `consequence_of` the codes of
    the findings of the same run that likely explain this one (set by `link_consequences`). `first_step` is the
    first step at which the finding held (its first live check, or the run's last step for a finding computed only
    at the end); `last_step` the last step at which one that later cleared still held (None while it holds).
    """

    code: str
    severity: str
    title: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    suggestion: str = ""
    figure: str | None = None
    probe: str = ""
    consequence_of: list[str] = field(default_factory=list)
    first_step: int | None = None
    last_step: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"Finding {self.code!r}: severity {self.severity!r} is not one of {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "evidence": _plain(self.evidence)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        return cls(**data)


def advice(texts: dict[str, str], task: str) -> str:
    """A rule's suggestion for the Monitor's task: `texts[task]`, else `texts["generic"]`."""
    return texts.get(task, texts["generic"])


def link_consequences(findings: list[Finding]) -> list[Finding]:
    """Mark each finding that a cause present in the same findings likely explains (see `CONSEQUENCES`): its
    `consequence_of` names the causes, its message gains one sentence saying so, and its suggestion starts with
    the most upstream cause's (the fix that removes it), its own advice kept for after. Findings already linked
    (read back from a run folder) are left as they are. Returns the same list."""
    present = {finding.code for finding in findings}
    first_of: dict[str, Finding] = {}
    for finding in findings:
        first_of.setdefault(finding.code, finding)
    for finding in findings:
        if finding.consequence_of:
            continue
        causes = sorted((cause for cause, effects in CONSEQUENCES.items()
                         if finding.code in effects and cause in present and cause != finding.code), key=_code_rank)
        if not causes:
            continue
        finding.consequence_of = causes
        reasons = " and of ".join(f"`{cause}` ({CONSEQUENCES[cause][finding.code]})" for cause in causes)
        finding.message = (f"{finding.message} Likely a consequence of {reasons}: fix "
                           f"{'that' if len(causes) == 1 else 'those'} first.")
        cause_advice = first_of[causes[0]].suggestion
        if cause_advice:
            finding.suggestion = (f"First fix `{causes[0]}`: {cause_advice}"
                                  + (f" If this remains after that: {finding.suggestion}" if finding.suggestion else ""))
    return findings


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first; within a severity by stage (data and set-up → optimisation → model → samples) and the
    code's place in its stage, then in the order the probes produced them. A finding whose `consequence_of` names a
    finding present follows that cause directly (its own consequences after it, in the same order), and a cause with
    its consequences is placed by the most severe of them and the cause's stage: a warning cause stands before its
    critical consequence, among the critical findings."""
    rank = {id(f): (SEVERITY_RANK[f.severity], *_code_rank(f.code), i) for i, f in enumerate(findings)}
    ordered = sorted(findings, key=lambda f: rank[id(f)])
    first_of: dict[str, Finding] = {}
    for finding in ordered:
        first_of.setdefault(finding.code, finding)
    parent: dict[int, Finding] = {}
    for finding in ordered:
        causes = [first_of[code] for code in finding.consequence_of if code in first_of]
        cause = min(causes, key=lambda f: rank[id(f)], default=None)
        if cause is not None and not _descends_from(cause, finding, parent):
            parent[id(finding)] = cause
    children: dict[int, list[Finding]] = defaultdict(list)
    for finding in ordered:
        if id(finding) in parent:
            children[id(parent[id(finding)])].append(finding)

    def group(finding: Finding) -> list[Finding]:
        return [finding] + [member for child in children[id(finding)] for member in group(child)]

    groups = [group(finding) for finding in ordered if id(finding) not in parent]
    groups.sort(key=lambda members: (min(SEVERITY_RANK[f.severity] for f in members), *rank[id(members[0])][1:]))
    return [finding for members in groups for finding in members]


def _code_rank(code: str) -> tuple[int, int]:
    return _CODE_RANK.get(code, (len(STAGES), 0))


def _descends_from(finding: Finding, ancestor: Finding, parent: dict[int, Finding]) -> bool:
    """Whether `ancestor` is `finding` or lies on its chain of causes (linking them would make a loop)."""
    while finding is not ancestor:
        if id(finding) not in parent:
            return False
        finding = parent[id(finding)]
    return True


def _plain(value: Any) -> Any:
    """Evidence as JSON-ready Python values (tensors and numpy scalars become numbers, NaN becomes None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value

"""The verdict at the top of a report: does the run train, and its root causes in the order to fix them, each with
its one decisive number (quoted from the finding's own evidence, so the verdict and the finding cannot disagree)
and the change to make.

A root cause is a critical or warning finding that no other finding of the run explains (`consequence_of` names
none present); the findings arrive sorted causes-first (`gendiag.findings.sort_findings`), and the verdict keeps
that order."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from gendiag.findings import Finding

# code -> the sentence that quotes its decisive number, as a format string over the finding's evidence. A code
# not listed here, or whose evidence lacks a key the sentence needs, shows its first numeric evidence instead.
DECISIVE: dict[str, str] = {
    "rendered-point-cloud": "image centroids move {centroid_spread:.3f} of the spatial spread",
    "data-near-duplicates": "about {effective_distinct:.1f} distinct samples in {samples_compared}",
    "data-binary-pixels": "{extreme_fraction:.1%} of pixel values at the minimum or maximum",
    "source-not-noise": "source mean {mean:.3g} and std {std:.3g} (noise: 0 and 1)",
    "target-explodes": "the {quantity} grows like (1 − t)^{exponent:.2f}",
    "data-bottleneck": "data preparation takes {data_share:.0%} of the step time",
    "loss-nonfinite": "first NaN or infinite loss at step {first_nonfinite_step}",
    "params-stalled": "weights move about {movement_over_run:.2%} over the run at the median step",
    "loss-diverging": "window median {last_median:.4g} at the end against a best of {best_median:.4g}",
    "loss-t-imbalance": "t in {worst_loss_bin} carries {worst_loss_share:.1%} of the loss",
    "field-ignores-t": "the field changes {sensitivity_t:.3g}× as much with t as the exact field",
    "samples-unlike-data": "sample mean {mean_offset:.2f} data spreads from the data's (data subsets: "
                           "{mean_offset_floor:.2f})",
    "train-sample-input-mismatch": "training inputs move {train_change_over_t:.3g} over t; worst training/sampling "
                                   "energy ratio {worst_ratio:.3g}",
    "mode-collapse": "{modes_covered} of {n_modes} modes covered (reverse KL {reverse_kl:.3g})",
    "gan-d-dominates": "median D(fake) {median_d_fake:.3f} over steps {from_step}–{to_step}",
    "sampler-state-frozen": "sampler state changes by at most {largest_state_change_max:.2g} (relative RMS)",
    "conditioning-ignored": "{agreement:.0%} of samples in the class asked for (chance {chance:.0%}, the data's own "
                            "rows {data_agreement:.0%})",
    "null-label-untrained": "the null condition on {null_in_training} of {training_rows} training rows and "
                            "{null_in_sampling} sampling rows",
}

_INLINE_CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class RootCause:
    """One root cause as the verdict lists it."""

    finding: Finding
    number: str  # the decisive number, in words
    explains: list[str]  # codes of the findings it likely explains

    @property
    def change(self) -> str:
        """The first sentence of the finding's suggestion: the change to make."""
        return first_sentence(self.finding.suggestion)


@dataclass(frozen=True)
class Verdict:
    """The verdict's headline (does the run train), its root causes in order, and how many info notes follow."""

    headline: str
    causes: list[RootCause]
    notes: int  # info findings, listed under Findings only


def verdict(findings: Sequence[Finding], partial: str | None = None) -> Verdict:
    """The headline and the root causes of sorted `findings`."""
    present = {finding.code for finding in findings}
    causes = [RootCause(f, decisive_number(f), [g.code for g in findings if f.code in g.consequence_of])
              for f in findings
              if f.severity != "info" and not any(code in present for code in f.consequence_of)]
    critical = sum(f.severity == "critical" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    notes = len(findings) - critical - warnings
    stopped = f" The run stopped early ({partial})." if partial else ""
    if critical:
        headline = (f"This run does not train as intended: {critical} critical and {warnings} warning finding"
                    f"{'s' if warnings != 1 else ''}, from {len(causes)} root cause{'s' if len(causes) != 1 else ''}"
                    f" (fix them in this order; the others follow from them).")
    elif warnings:
        headline = (f"This run trains, with {warnings} warning{'s' if warnings != 1 else ''} to check, from "
                    f"{len(causes)} root cause{'s' if len(causes) != 1 else ''}.")
    else:
        headline = "Nothing in this run looked wrong to the probes that ran."
    return Verdict(headline + stopped, causes, notes)


def decisive_number(finding: Finding) -> str:
    """The finding's decisive number in words, from its evidence (see `DECISIVE`)."""
    evidence = dict(finding.evidence)
    changes = [v for v in evidence.get("largest_state_change") or [] if isinstance(v, (int, float))]
    if changes:
        evidence["largest_state_change_max"] = max(changes)
    template = DECISIVE.get(finding.code)
    if template is not None:
        try:
            return template.format(**evidence)
        except (KeyError, ValueError, TypeError):  # evidence of another shape (an older run): the generic line
            pass
    for key, value in finding.evidence.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return f"{key.replace('_', ' ')} {format_number(value)}"
    return ""


def format_number(value: Any) -> str:
    """A number as the report prints it: 4 significant digits; None or NaN is "not measured"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def first_sentence(text: str) -> str:
    """Up to and including the first full stop that ends a sentence (not one inside a number or `code`)."""
    masked = _INLINE_CODE.sub(lambda m: "x" * len(m.group(0)), text)
    masked = re.sub(r"\b(e\.g|i\.e|etc|cf|vs)\.", lambda m: "x" * len(m.group(0)), masked)
    match = re.search(r"[.!?](\s|$)", masked)
    return text if match is None else text[:match.start() + 1]

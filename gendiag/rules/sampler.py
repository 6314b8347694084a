"""Rule on the sampler runs: a sampler that never moves its state, returns its start, or ignores the step count."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gendiag.findings import Finding
from gendiag.quantities.sampler import STEP_COUNTS
from gendiag.rules.thresholds import SAMPLER_FROZEN

if TYPE_CHECKING:
    import pandas as pd


def sampler_problems(rows: "pd.DataFrame", field: str) -> dict[str, Any]:
    """What is wrong with the sampler on the reference field's rows of `SamplerRuns.table` (empty when nothing
    is): the reasons in words, whether the state is frozen, and the evidence."""
    multi = rows[rows["steps"] > 1]
    reasons = []
    never_called = bool((rows["field_calls"] == 0).all())
    frozen = bool((multi["field_calls"] >= 2).any() and (multi["largest_state_change"] < SAMPLER_FROZEN).all())
    if never_called:
        reasons.append("never called the velocity field")
    elif frozen:
        reasons.append(f"passed the same state to the field at every call (largest relative change "
                       f"{multi['largest_state_change'].max():.2g} over {int(multi['field_calls'].max())} calls)")
    if bool((rows["output_change"] < SAMPLER_FROZEN).all()):
        reasons.append("returned its start unchanged")
    single, most = rows[rows["steps"] == STEP_COUNTS[0]], rows[rows["steps"] == STEP_COUNTS[-1]]
    if float(single["vs_most_steps"].iloc[0]) < SAMPLER_FROZEN and float(most["output_change"].iloc[0]) >= SAMPLER_FROZEN:
        reasons.append(f"gave the same output with {STEP_COUNTS[0]} and {STEP_COUNTS[-1]} steps")
    if not reasons:
        return {}
    evidence = {"field": field, "step_counts": list(STEP_COUNTS),
                "field_calls": rows["field_calls"].astype(int).tolist(),
                "largest_state_change": rows["largest_state_change"].round(8).tolist(),
                "output_change": rows["output_change"].round(8).tolist(),
                "output_difference_to_most_steps": rows["vs_most_steps"].round(8).tolist(),
                "threshold": SAMPLER_FROZEN}
    if field == "exact":
        evidence["distance_to_data"] = rows["distance_to_data"].round(4).tolist()
    return {"field": field, "reasons": reasons, "frozen": never_called or frozen, "evidence": evidence}


def sampler_findings(problems: dict[str, Any], figure: str | None) -> list[Finding]:
    """`sampler-state-frozen` (critical) for any problem `sampler_problems` found."""
    if not problems:
        return []
    return [Finding(
        code="sampler-state-frozen", severity="critical",
        title="The sampler's state does not move" if problems["frozen"] else
              "The sampler's output does not depend on the step count",
        message=(f"Run on the {problems['field']} field, a field that is not zero, the sampler "
                 + " and ".join(problems["reasons"]) + ". Sampling then returns (close to) the noise it "
                 "started from, whatever the network learned."),
        evidence=problems["evidence"],
        suggestion=("Update the sampler's state in place of a new variable at every step (x = x + h * "
                    "velocity_fn(x, t), and return that x), and make the step size 1/steps so that the step "
                    "count matters."),
        figure=figure,
    )]

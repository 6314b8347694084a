"""`loss-at-baseline`: a regression network whose output barely varies across its inputs while its loss stays
where predicting the target's mean leaves it: the target does not depend on the input the network sees."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding, advice
from gendiag.rules.thresholds import BASELINE_MIN_STEPS, BASELINE_NOISE_BAND, BASELINE_SPREAD

ADVICE = {
    "diffusion": ("Use the same noise in the target as in x_t: draw ε once, build x_t = sqrt(ᾱ_t)·x0 + "
                  "sqrt(1 - ᾱ_t)·ε and regress the network's output on that ε (not on a fresh torch.randn_like)."),
    "flow": ("Build the target from the same x0, x1 and t as x_t (x_t = t·x1 + (1 - t)·x0, target x1 - x0), not "
             "from a batch drawn apart."),
    "generic": "Compute the target from the same draws that built the network's input, not from draws made apart.",
}


def loss_at_baseline(summary: dict[str, Any] | None, task: str) -> list[Finding]:
    """The finding when, over the last quarter of at least BASELINE_MIN_STEPS steps, the output's variance across
    rows is at most BASELINE_SPREAD of the loss per element: read as a mean over elements (a noise-prediction loss
    within BASELINE_NOISE_BAND of 1, the loss of predicting 0) or as a sum over them."""
    if summary is None or summary["steps"] < BASELINE_MIN_STEPS or summary["elements"] < 1:
        return []
    spread, loss, elements = summary["output_spread"], summary["loss"], summary["elements"]
    per_element = None
    if task == "diffusion":
        per_element = next((value for value in (loss, loss / elements)
                            if abs(value - 1) <= BASELINE_NOISE_BAND and spread <= BASELINE_SPREAD * value), None)
    if per_element is None and loss > 0 and spread <= BASELINE_SPREAD * loss / elements:
        per_element = loss / elements
    if per_element is None:
        return []
    noise = task == "diffusion" and abs(per_element - 1) <= BASELINE_NOISE_BAND
    what = ("1 per element, the variance of the N(0, I) noise it is asked to predict" if noise else
            "the variance of its target")
    message = (f"From step {summary['since_step']} to {summary['last_step']} the loss stayed at {loss:.4g} "
               f"({per_element:.4g} per element): {what}, the loss of predicting the target's mean. Across the "
               f"rows of each training call the output of `{summary['model']}` varies by {spread:.3g} per element "
               f"(variance), {spread / per_element:.2g} of that loss: the network gives every input nearly the same "
               "answer, because nothing in its input tells it the target. The target does not depend on the input "
               "the network sees.")
    evidence = {**{k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()},
                "loss_per_element": round(per_element, 6), "spread_over_loss": round(spread / per_element, 6),
                "threshold_spread": BASELINE_SPREAD, "noise_band": BASELINE_NOISE_BAND}
    return [Finding(code="loss-at-baseline", severity="critical",
                    title=f"The loss stays at the baseline of predicting the mean ({per_element:.3g} per element)",
                    message=message, evidence=evidence, suggestion=advice(ADVICE, task))]

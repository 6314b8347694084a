"""`loss-at-baseline`: a noise-prediction network whose output barely varies across its inputs while its loss stays
at 1 per element, where predicting the noise's mean 0 leaves it: the target does not depend on the input the
network sees."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding
from gendiag.rules.thresholds import BASELINE_MIN_STEPS, BASELINE_NOISE_BAND, BASELINE_SPREAD

ADVICE = ("Use the same noise in the target as in x_t: draw ε once, build x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε and "
          "regress the network's output on that ε (not on a fresh torch.randn_like).")


def loss_at_baseline(summary: dict[str, Any] | None, figure: str | None) -> list[Finding]:
    """The finding when, over the last quarter of at least BASELINE_MIN_STEPS steps, a noise-prediction loss per
    element (the loss as a mean over elements, or the loss over the elements of a row as a sum) lies within
    BASELINE_NOISE_BAND of 1, the loss of predicting 0, and the output's variance across rows is at most
    BASELINE_SPREAD of it. `figure`: the run-relative path of the figure that shows it."""
    if summary is None or summary["steps"] < BASELINE_MIN_STEPS or summary["elements"] < 1:
        return []
    spread, loss, elements = summary["output_spread"], summary["loss"], summary["elements"]
    per_element = next((value for value in (loss, loss / elements)
                        if abs(value - 1) <= BASELINE_NOISE_BAND and spread <= BASELINE_SPREAD * value), None)
    if per_element is None:
        return []
    message = (f"From step {summary['since_step']} to {summary['last_step']} the loss stayed at {loss:.4g} "
               f"({per_element:.4g} per element): 1 per element is the variance of the N(0, I) noise the network is "
               f"asked to predict, the loss of predicting its mean 0. Across the rows of each training call the "
               f"output of `{summary['model']}` varies by {spread:.3g} per element (variance), "
               f"{spread / per_element:.2g} of that loss: the network gives every input nearly the same answer, "
               "because nothing in its input tells it the target. The noise in the target is not the noise in the "
               "input x_t the network sees.")
    evidence = {**{k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()},
                "loss_per_element": round(per_element, 6), "spread_over_loss": round(spread / per_element, 6),
                "threshold_spread": BASELINE_SPREAD, "noise_band": BASELINE_NOISE_BAND}
    return [Finding(code="loss-at-baseline", severity="critical",
                    title=f"The loss stays at the baseline of predicting the mean ({per_element:.3g} per element)",
                    message=message, evidence=evidence, suggestion=ADVICE, figure=figure)]

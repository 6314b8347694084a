"""`forward-process-off-schedule`: the training inputs' mean square per bin of ᾱ_t does not follow
ᾱ_t·E[x0²] + 1 - ᾱ_t, the forward process the schedule (and the sampler that uses it) assumes."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding
from gendiag.rules.thresholds import FORWARD_MIN_ROWS, FORWARD_OFF


def off_schedule(measured: dict[str, Any] | None, model: str, figure: str | None) -> list[Finding]:
    """The finding when the median |log ratio| of measured to expected mean square exceeds FORWARD_OFF; its
    message names a missing square root where that line fits the inputs at least twice as well."""
    if measured is None or measured["off"] <= FORWARD_OFF:
        return []
    root = measured["off_root"] < min(FORWARD_OFF, measured["off"] / 2)
    pairs = ", ".join(f"ᾱ {a:.2f}: {m:.3g} (expected {e:.3g})" for a, m, e in
                      zip(measured["alpha_bar"], measured["measured"], measured["expected"]))
    cause = ("They follow ᾱ_t²·E[x0²] + (1 - ᾱ_t)² instead: x_t is built as ᾱ_t·x0 + (1 - ᾱ_t)·ε, without the square "
             "roots." if root else "The inputs are not x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε for the schedule given.")
    message = (f"The inputs `{model}` was trained on have, per element, the mean square {pairs}; the schedule's "
               f"forward process gives ᾱ_t·E[x0²] + 1 - ᾱ_t with E[x0²] = {measured['data_mean_square']:.3g} (from "
               f"{measured['data_source']}). {cause} The sampler undoes the schedule's process, so it walks from noise "
               "through inputs the network never saw.")
    evidence = {"model": model, **{k: _rounded(v) for k, v in measured.items()}, "threshold": FORWARD_OFF,
                "min_rows_per_bin": FORWARD_MIN_ROWS, "missing_square_root": root}
    return [Finding(
        code="forward-process-off-schedule", severity="critical",
        title=("Training inputs miss the square roots of the forward process" if root else
               "Training inputs do not follow the schedule's forward process"),
        message=message, evidence=evidence, figure=figure,
        suggestion=("Build x_t = sqrt(ᾱ_t)·x0 + sqrt(1 - ᾱ_t)·ε with ᾱ_t = alphas_cumprod[t] (the cumulative product "
                    "of 1 - β, indexed by the same t the network gets), as the sampler assumes."))]


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value

"""Rules on a network's own calls during sampling: `sampler-state-frozen` (the state never moves, or restarts from
the same start every step) and `t-range-untrained` (the sampler visits times training never drew)."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding, advice
from gendiag.rules.thresholds import (
    SAMPLER_FROZEN, SAMPLING_MIN_TIMES, SAMPLING_RESTART_GROWTH, SAMPLING_RESTART_RESIDUAL, T_UNTRAINED_CRITICAL,
    T_UNTRAINED_MIN_TIMES, T_UNTRAINED_WARNING,
)

FROZEN_ADVICE = ("Assign each step's result back to the state the next step starts from (`x = x + dt * v(x, t)`, "
                 "`x = step(x, t)`), not to a new variable, and pass that state, not the initial noise, to the "
                 "network.")
T_ADVICE = {
    "diffusion": ("Draw the training timesteps over every step the sampler uses (`t = torch.randint(0, T, (B,))` "
                  "for a sampler from T - 1 down to 0), on the same scale (integer step or step / T) the sampler "
                  "passes."),
    "flow": ("Draw the training times over the whole interval the sampler integrates (`t = torch.rand(B)` for a "
             "sampler from 0 to 1), on the same scale and direction the sampler passes."),
    "generic": ("Draw t in training over the whole range the sampler calls the network with, on the same scale "
                "(integer step or fraction) and in the same direction."),
}


def frozen_problem(motions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first sampling block, over at least SAMPLING_MIN_TIMES distinct times, whose state never moves
    (`largest_change` below SAMPLER_FROZEN) or restarts from the same start at every step (each input less the first
    is the previous output times a scalar, residual below SAMPLING_RESTART_RESIDUAL, a scalar that grows less than
    SAMPLING_RESTART_GROWTH times); None when every block's state walks."""
    for motion in motions:
        if motion["distinct_times"] < SAMPLING_MIN_TIMES:
            continue
        if motion["largest_change"] < SAMPLER_FROZEN:
            return {**motion, "kind": "still"}
        if motion["restart_residual"] is not None and motion["restart_residual"] < SAMPLING_RESTART_RESIDUAL \
                and motion["restart_growth"] < SAMPLING_RESTART_GROWTH:
            return {**motion, "kind": "restarts"}
    return None


def frozen_from_calls(problem: dict[str, Any] | None, figure: str | None) -> list[Finding]:
    """`sampler-state-frozen` from the network's sampling calls: critical when the state never moves, a warning when it
    restarts from the same start at every step."""
    if problem is None:
        return []
    model, calls, times = problem["model"], problem["calls"], problem["distinct_times"]
    where = f"In the sampling block at step {problem['step']}, `{model}` was called {calls} times at {times} times t"
    if problem["kind"] == "still":
        title = "The sampler passes the same state to the network at every step"
        message = (f"{where}, and its input x never changed: the largest relative change from the first "
                   f"call's input is {problem['largest_change']:.2g} (below {SAMPLER_FROZEN:g}). The sampler computes "
                   "each step from its starting noise and never carries the result forward, so what it returns is "
                   "at best one step from the noise. (If these calls were not a sampler but the network evaluated "
                   "on one grid at several t, ignore this.)")
    else:
        title = "The sampler restarts every step from the same start"
        message = (f"{where}; each call's input is the first call's input plus the previous call's "
                   f"output times one number (largest relative residual {problem['restart_residual']:.2g}, below "
                   f"{SAMPLING_RESTART_RESIDUAL:g}) that grew only {problem['restart_growth']:.3g}× over the block "
                   f"(below {SAMPLING_RESTART_GROWTH:g}; a sampler that adds its steps up grows it about as many "
                   "times as it takes steps). Each step starts again from the same state instead of the last "
                   "step's result, so the samples end about one step from the noise.")
    evidence = {"model": model, "step": problem["step"], "calls": calls, "distinct_times": times,
                "largest_change": round(problem["largest_change"], 8),
                "restart_residual": _rounded(problem["restart_residual"]),
                "restart_growth": _rounded(problem["restart_growth"]),
                "threshold_still": SAMPLER_FROZEN, "threshold_restart_residual": SAMPLING_RESTART_RESIDUAL,
                "threshold_restart_growth": SAMPLING_RESTART_GROWTH, "source": "sampling calls"}
    return [Finding(code="sampler-state-frozen", severity="critical" if problem["kind"] == "still" else "warning",
                    title=title, message=message, evidence=evidence, suggestion=FROZEN_ADVICE, figure=figure)]


def t_range_untrained(coverage: dict[str, Any] | None, model: str, task: str, figure: str | None) -> list[Finding]:
    """`t-range-untrained`: a share of the sampler's calls at least T_UNTRAINED_WARNING (critical from
    T_UNTRAINED_CRITICAL) falls in bins of t where no training time was drawn, judged once at least
    T_UNTRAINED_MIN_TIMES training times were kept."""
    if coverage is None or coverage["train_times"] < T_UNTRAINED_MIN_TIMES:
        return []
    share = coverage["untrained_share"]
    if share < T_UNTRAINED_WARNING:
        return []
    edges = coverage["edges"]
    spans = _spans(coverage["untrained_bins"], edges)
    (t_lo, t_hi), (s_lo, s_hi) = coverage["train_range"], coverage["sampling_range"]
    message = (f"Training fed `{model}` times t in [{t_lo:.4g}, {t_hi:.4g}], while the sampler called it with t in "
               f"[{s_lo:.4g}, {s_hi:.4g}]: {share:.0%} of the sampling calls fall where no training time was drawn "
               f"({', '.join(f'[{a:.4g}, {b:.4g}]' for a, b in spans)}). The network's output there is whatever it "
               "extrapolates, and the samples start from (or pass through) those times.")
    evidence = {"model": model, "train_range": [round(t_lo, 6), round(t_hi, 6)],
                "sampling_range": [round(s_lo, 6), round(s_hi, 6)], "untrained_share": round(share, 4),
                "untrained_ranges": [[round(a, 6), round(b, 6)] for a, b in spans],
                "train_times_kept": coverage["train_times"], "sampling_calls": coverage["sampling_calls"],
                "threshold_warning": T_UNTRAINED_WARNING, "threshold_critical": T_UNTRAINED_CRITICAL}
    return [Finding(code="t-range-untrained", severity="critical" if share >= T_UNTRAINED_CRITICAL else "warning",
                    title=f"The sampler uses times training never drew (t in [{spans[0][0]:.4g}, {spans[-1][1]:.4g}])",
                    message=message, evidence=evidence, suggestion=advice(T_ADVICE, task), figure=figure)]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 8)


def _spans(bins: list[int], edges: list[float]) -> list[tuple[float, float]]:
    """Runs of consecutive bin numbers as (low edge, high edge) ranges of t."""
    spans: list[list[int]] = []
    for index in bins:
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return [(edges[a], edges[b + 1]) for a, b in spans]

"""Rules on the loss by t: `loss-t-imbalance` and `target-explodes` from
`gendiag.quantities.loss_by_t.summarise_loss_by_t`."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding, advice
from gendiag.quantities.loss_by_t import BINS
from gendiag.rules.thresholds import (LOSS_T_EXPLODES_CRITICAL, LOSS_T_EXPLODES_WARNING, LOSS_T_LOSS_SHARE,
                                      LOSS_T_TAIL_RATIO, LOSS_T_VARIANCE_SHARE)


def judge_bins(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with its verdicts: `imbalanced` (one tenth of t carries LOSS_T_LOSS_SHARE of the expected loss
    or LOSS_T_VARIANCE_SHARE of its variance) and, per fitted tail, `explodes` (exponent at or below
    LOSS_T_EXPLODES_WARNING and the outer bin LOSS_T_TAIL_RATIO times the median) with its `severity`."""
    tails = []
    for tail in summary["tails"]:
        judged = {**tail, "explodes": False}
        if tail["slope"] is not None:
            judged["severity"] = "critical" if tail["slope"] <= LOSS_T_EXPLODES_CRITICAL else "warning"
            judged["explodes"] = bool(tail["slope"] <= LOSS_T_EXPLODES_WARNING
                                      and tail["outer_ratio"] >= LOSS_T_TAIL_RATIO)
        tails.append(judged)
    imbalanced = (summary["worst_loss_share"] >= LOSS_T_LOSS_SHARE
                  or summary["worst_variance_share"] >= LOSS_T_VARIANCE_SHARE)
    return {**summary, "imbalanced": bool(imbalanced), "tails": tails}


def loss_by_t_findings(summary: dict[str, Any], figure: str | None, task: str) -> list[Finding]:
    """`loss-t-imbalance` and one `target-explodes` per exploding end, from a `judge_bins` summary."""
    found = []
    if summary["imbalanced"]:
        found.append(imbalance_finding(summary, figure))
    for end in summary["tails"]:
        if end["explodes"]:
            found.append(explodes_finding(end, figure, task))
    return found


def rounded(values: list[float]) -> list[float]:
    """Four significant digits, for evidence a person reads."""
    return [float(f"{v:.4g}") for v in values]


def imbalance_finding(summary: dict[str, Any], figure: str | None) -> Finding:
    return Finding(
        code="loss-t-imbalance", severity="warning",
        title="A few values of t carry most of the loss",
        message=(f"In steps {summary['late_steps'][0]}–{summary['late_steps'][1]}, the t range "
                 f"{summary['worst_loss_bin']} carries {summary['worst_loss_share']:.0%} of the expected loss and "
                 f"{summary['worst_variance_bin']} carries {summary['worst_variance_share']:.0%} of the loss "
                 f"variance, where an even spread over {BINS} bins would give 10% each. Gradients are then dominated "
                 "by those t and the rest of the path is learned slowly."),
        evidence={"steps": summary["late_steps"], "worst_loss_bin": summary["worst_loss_bin"],
                  "worst_loss_share": summary["worst_loss_share"], "worst_variance_bin": summary["worst_variance_bin"],
                  "worst_variance_share": summary["worst_variance_share"],
                  "loss_share_by_bin": rounded(summary["loss_share"]),
                  "variance_share_by_bin": rounded(summary["variance_share"]),
                  "mean_loss_by_bin": rounded(summary["bin_mean"])},
        suggestion=("Check the target's scale over t (a target divided by 1 - t or by sigma grows without bound); "
                    "weight the loss per t (e.g. by 1/E[loss | t]) or sample t where the loss is informative."),
        figure=figure,
    )


EXPLODES_ADVICE = {  # `target-explodes`, by task
    "flow": ("Regress on a bounded target: for the linear path x_t = t·x1 + (1 - t)·x0 the conditional velocity is "
             "x1 - x0 (no division by 1 - t); if the formula must divide, evaluate it at x_t, not x0, and draw t from "
             "[0, 1 - eps]."),
    "diffusion": ("Regress on a bounded target: the noise ε (or v = sqrt(ᾱ_t)·ε - sqrt(1 - ᾱ_t)·x0), not the score "
                  "-ε / sqrt(1 - ᾱ_t), which grows without bound where ᾱ_t → 1, nor x0 recovered by dividing by "
                  "sqrt(ᾱ_t), which does where ᾱ_t → 0; a loss weight that divides by either needs clipping."),
    "generic": ("Regress on a target that stays bounded over t: find the division by a quantity that reaches 0 at "
                "one end of t (1 - t, t, sigma) and remove it, clip it, or keep t away from that end."),
}


def explodes_finding(tail: dict[str, Any], figure: str | None, task: str) -> Finding:
    end = tail["end"]
    near = "1 - t" if end == "t -> 1" else "t"
    return Finding(
        code="target-explodes", severity=tail["severity"],
        title=f"The regression target grows without bound as {end.replace('->', '→')}",
        message=(f"The {tail['quantity']} grows like ({near})^{tail['slope']:.2f} as {end} (least-squares fit of "
                 f"log mean against log({near}) over {len(tail['counts'])} geometric bins). At {near} ≈ "
                 f"{tail['outer_distance']:.2g} its mean is {tail['outer_value']:.4g}, "
                 f"{tail['outer_ratio']:.3g}× its median over t ({tail['median']:.4g}). "
                 + ("With an exponent at or below -1 the expected loss over t is infinite: a few samples near the "
                    "end decide every step." if tail["slope"] <= -1 else
                    "The loss near the end dominates its variance.")),
        evidence={"end": end, "exponent": tail["slope"], "fit_distances": rounded(tail["distances"]),
                  "fit_values": rounded(tail["values"]), "fit_counts": tail["counts"],
                  "outer_distance": tail["outer_distance"],
                  "outer_value": tail["outer_value"], "ratio_to_median": tail["outer_ratio"],
                  "median_over_t": tail["median"], "quantity": tail["quantity"]},
        suggestion=advice(EXPLODES_ADVICE, task),
        figure=figure,
    )



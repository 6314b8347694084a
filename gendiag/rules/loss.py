"""Rules on the training loss: `loss-nonfinite`, `loss-unbounded-below` and `loss-diverging` from
`gendiag.quantities.loss.summarise_loss` (and, to name the term without a floor, `LossTerms.summary`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gendiag.findings import Finding, advice
from gendiag.quantities.loss import WINDOWS, LossTerms
from gendiag.rules.thresholds import (LOSS_BLOWUP, LOSS_OSCILLATION_GROWTH, LOSS_RISE, LOSS_RISE_TAU,
                                      LOSS_SWING_GROWTH_OF_NOISE, LOSS_UNBOUNDED_DEPTH, LOSS_UNBOUNDED_FALL,
                                      LOSS_UNBOUNDED_TAU)


def swing_growth_needed(losses: int) -> float:
    """The growth of the loss's swing that calls it oscillating on `losses` losses: LOSS_OSCILLATION_GROWTH, or on
    fewer than 30 a window more than flat noise of that length reaches but once in 2,000 series."""
    per_window, growth = zip(*LOSS_SWING_GROWTH_OF_NOISE)
    return max(LOSS_OSCILLATION_GROWTH, float(np.interp(losses / WINDOWS, per_window, growth)))


def judge_trend(summary: dict[str, Any]) -> dict[str, bool]:
    """The verdicts on a loss summary: a sustained rise after the best window (`trend_up`), a later window far
    above it (`blew_up`), a swing that grows while the level is above the best (`oscillation_grows`), and
    `diverging` when any holds; `unbounded_below` when the loss falls below 0 without slowing down, or
    (`unbounded_deep`) lies so far below its start that no floor a loss can have explains it, however it got there.
    Only `diverging` (False) for a summary too short to have windows."""
    if "best_median" not in summary:
        return {"diverging": False}
    below = summary["last_median"] < 0
    steady = (below and summary["fall"] >= LOSS_UNBOUNDED_FALL and summary["fall_tau"] <= LOSS_UNBOUNDED_TAU
              and summary["falling_at_end"] and summary["fall_speedup"] >= 1)
    deep = below and summary["fall"] >= LOSS_UNBOUNDED_DEPTH
    unbounded = steady or deep
    trend_up = summary["rise"] >= LOSS_RISE and summary["trend_tau"] >= LOSS_RISE_TAU
    blew_up = summary["blowup"] >= LOSS_BLOWUP and summary["peak_after_best"]
    oscillating = (summary["oscillation_growth"] >= swing_growth_needed(summary["finite"])
                   and summary["calm_before_last"] and summary["last_median"] > summary["best_median"])
    return {"diverging": bool((trend_up or blew_up or oscillating) and not unbounded), "trend_up": bool(trend_up),
            "blew_up": bool(blew_up), "oscillation_grows": bool(oscillating), "unbounded_below": bool(unbounded),
            "unbounded_deep": bool(deep)}


def loss_findings(summary: dict[str, Any], figure: str | None, task: str) -> list[Finding]:
    """`loss-nonfinite` when any recorded loss was NaN or infinite, `loss-unbounded-below` when it falls without
    limit, `loss-diverging` when the trend says so; `summary` is a loss summary with its `judge_trend` verdicts and
    its `terms` (`LossTerms.summary`)."""
    found: list[Finding] = []
    if summary.get("first_nonfinite_step") is not None:
        found.append(nonfinite_finding(summary, figure, task))
    elif summary.get("named_nonfinite"):
        found.append(named_nonfinite_finding(summary["named_nonfinite"], figure, task))
    if summary.get("unbounded_below"):
        found.append(unbounded_finding(summary, figure, task))
    if summary.get("diverging"):
        found.append(diverging_finding(summary, figure, task))
    return found


NONFINITE_ADVICE = {  # `loss-nonfinite`, by task
    "gan": ("Lower the learning rates or clip gradients; compute the losses from D's logits (BCEWithLogitsLoss), not "
            "log(D(x)) of a sigmoid output, which is log 0 once D saturates."),
    "vae": ("Lower the learning rate or clip gradients; keep the log-variances bounded (clamp or softplus) so that "
            "exp(logvar) cannot overflow, and compute a Bernoulli likelihood from logits (BCEWithLogitsLoss)."),
    "generic": ("Lower the learning rate or clip gradients (torch.nn.utils.clip_grad_norm_); look for a division by a "
                "quantity that reaches 0 (1 - t, sigma, a norm) or a log of 0 in the loss."),
}
_TARGET_HINT = ("Lower the learning rate (or check that the scheduler does not raise it), clip gradient norms, and "
                "check the findings on the loss by t: a target that explodes makes the loss jump.")
DIVERGING_ADVICE = {  # `loss-diverging`, by task
    "flow": _TARGET_HINT,
    "diffusion": _TARGET_HINT,
    "gan": ("Judge a GAN by its samples and the balance of D and G rather than by a rising loss; if the samples "
            "worsen too, lower both learning rates (Adam β1 = 0.5) and regularise D (spectral normalization, "
            "gradient penalty)."),
    "vae": ("Lower the learning rate (or check that the scheduler does not raise it), clip gradient norms, and keep "
            "the log-variances bounded (clamp or softplus): exp of a large logvar makes the loss jump."),
    "generic": "Lower the learning rate (or check that the scheduler does not raise it) and clip gradient norms.",
}


def nonfinite_finding(summary: dict[str, Any], figure: str | None, task: str) -> Finding:
    first = summary["first_nonfinite_step"]
    last = summary.get("last_loss")
    return Finding(
        code="loss-nonfinite", severity="critical",
        title=f"The loss became NaN or infinite at step {first}",
        message=(f"{summary['nonfinite']} of {summary['recorded']} recorded losses are NaN or infinite, the first at "
                 f"step {first}. " + (f"The last finite loss was {last:.4g}" if last is not None else
                                      "No finite loss was recorded") +
                 (f" and the loss had risen to {summary['peak_median']:.4g} (median of a window) from a best of "
                  f"{summary['best_median']:.4g}." if summary.get("blew_up") or summary.get("trend_up") else ".")),
        evidence={"first_nonfinite_step": first, "nonfinite_steps": summary["nonfinite"],
                  "recorded_steps": summary["recorded"], "last_finite_loss": last,
                  "last_finite_step": summary.get("last_finite_step")},
        suggestion=advice(NONFINITE_ADVICE, task),
        figure=figure,
    )


def named_nonfinite_finding(named: dict[str, dict[str, Any]], figure: str | None, task: str) -> Finding:
    """`loss-nonfinite` for named losses (`loss_d`, `loss_g`, any `loss_*` of `mon.step`) that became NaN or
    infinite while `loss` (where given) stayed finite; `named` is `NamedLosses.nonfinite()`, earliest first."""
    name, first = next(iter(named.items()))
    others = [f"{other} at step {c['first_nonfinite_step']}" for other, c in list(named.items())[1:]]
    return Finding(
        code="loss-nonfinite", severity="critical",
        title=f"The loss {name} became NaN or infinite at step {first['first_nonfinite_step']}",
        message=(f"{first['nonfinite']} of {first['recorded']} recorded values of {name} are NaN or infinite, the "
                 f"first at step {first['first_nonfinite_step']}" +
                 (f"; also {', '.join(others)}." if others else ".")),
        evidence={"loss": name, "first_nonfinite_step": first["first_nonfinite_step"],
                  "nonfinite_steps": first["nonfinite"], "recorded_steps": first["recorded"], "named_losses": named},
        suggestion=advice(NONFINITE_ADVICE, task),
        figure=figure,
    )


def diverging_finding(summary: dict[str, Any], figure: str | None, task: str) -> Finding:
    best, last = summary["best_median"], summary["last_median"]
    reasons = []
    if summary["trend_up"]:
        reasons.append(f"after its lowest window (steps {summary['best_window'][0]}–{summary['best_window'][1]}, "
                       f"median {best:.4g}) the loss trends up to a median of {last:.4g} in the last window "
                       f"(Kendall tau {summary['trend_tau']:.2f} over the window medians)")
    if summary["blew_up"]:
        reasons.append(f"in steps {summary['peak_window'][0]}–{summary['peak_window'][1]} the window median reached "
                       f"{summary['peak_median']:.4g}, {summary['peak_median'] / best if best else math.inf:.3g}× "
                       f"the best {best:.4g}")
    if summary["oscillation_grows"]:
        calm, best_window = summary["calm_window"], summary["best_window"]
        where = ("the window of lowest median too" if tuple(calm) == tuple(best_window) else
                 f"the lowest median was in steps {best_window[0]}–{best_window[1]}")
        reasons.append(f"the step-to-step swing of the loss grew {summary['oscillation_growth']:.3g}× from its "
                       f"calmest window (smallest median swing: steps {calm[0]}–{calm[1]}; {where}) to the last, "
                       f"whose median {last:.4g} stays above the best {best:.4g}")
    gan = task == "gan"
    return Finding(
        code="loss-diverging", severity="info" if gan else "warning",
        title=diverging_title(summary),
        message=_sentence("; ".join(reasons)) + (
            " (A GAN's losses are not minimised, so this is only noted.)" if gan else ""),
        evidence={k: summary[k] for k in ("best_window", "best_median", "last_median", "peak_window", "peak_median",
                                           "rise", "trend_tau", "calm_window", "oscillation_growth", "spikes")},
        suggestion=advice(DIVERGING_ADVICE, task),
        figure=figure,
    )


MUST_BE_NONNEGATIVE = (("kl", "a KL divergence"), ("mse", "a squared error"), ("l2", "a squared error"),
                       ("bce", "a binary cross-entropy"), ("recon", "a reconstruction error (squared error or BCE)"))
UNBOUNDED_ADVICE = {  # `loss-unbounded-below`, by task, where no reported term is named
    "vae": ("A VAE's loss is the reconstruction error plus the KL, both ≥ 0 (for a Bernoulli or fixed-variance "
            "Gaussian likelihood): check the sign of the KL term (KL = 0.5 Σ (μ² + σ² − 1 − log σ²), added, not "
            "subtracted); report the terms to mon.step (recon=..., kl=...) and observe_latents(mu, logvar) so "
            "that the one without a floor is named."),
    "gan": ("BCE losses of D and G are ≥ 0: a loss below 0 has a term with the wrong sign, or a critic (WGAN) "
            "without a gradient penalty or weight clipping, whose loss has no floor; add the gradient penalty."),
    "flow": ("A flow-matching loss is a squared error, ≥ 0: a loss below 0 subtracts a term; check the sign of "
             "every term added to it."),
    "diffusion": ("A diffusion loss is a squared error, ≥ 0: a loss below 0 subtracts a term; check the sign of "
                  "every term added to it."),
    "generic": ("Check the sign of each term of the loss: a term that can grow without limit enters with a minus "
                "sign; report the terms to mon.step (name=value) so that the one without a floor is named."),
}


def floorless_term(summary: dict[str, Any]) -> tuple[str, str, bool] | None:
    """The reported term that explains a loss falling without limit, why, and whether the loss subtracts it: a
    term that must be ≥ 0 and grew as the loss fell (subtracted), or a term that fell below 0 with the loss. Each
    must follow the loss's trend (Kendall's tau), except after a fall past LOSS_UNBOUNDED_DEPTH starting scales: a
    term that moved by half of that is the explanation, whatever its path."""
    fall = summary["first_median"] - summary["last_median"]
    deep = summary["fall"] >= LOSS_UNBOUNDED_DEPTH
    terms = summary.get("terms", {})
    ranked = sorted(terms.items(), key=lambda item: (item[0] == LossTerms.LATENT_KL,
                                                     -abs(item[1]["last"] - item[1]["first"])))
    for name, term in ranked:
        kind = _nonnegative_kind(name)
        rose = term["last"] - term["first"]
        label = name if name == LossTerms.LATENT_KL else f"`{name}`"
        if kind and rose >= fall / 2 and (deep or term["tau"] >= -LOSS_UNBOUNDED_TAU):
            return name, (f"{kind} cannot be negative, and {label} rose from {term['first']:.4g} to "
                          f"{term['last']:.4g} while the loss fell from {summary['first_median']:.4g} to "
                          f"{summary['last_median']:.4g}: the loss subtracts it (its sign is wrong), so making it "
                          "grow without limit lowers the loss without limit"), True
        if term["last"] < 0 and -rose >= fall / 2 and (deep or term["tau"] <= LOSS_UNBOUNDED_TAU):
            why = f"; {kind} cannot be negative, so its formula is wrong" if kind else ""
            return name, (f"the term {label} fell with it, from {term['first']:.4g} to {term['last']:.4g}: it has "
                          f"no floor{why}"), False
    return None


def _nonnegative_kind(name: str) -> str | None:
    if name == LossTerms.LATENT_KL:
        return "a KL divergence"
    lowered = name.lower()
    return next((kind for key, kind in MUST_BE_NONNEGATIVE if key in lowered), None)


def unbounded_finding(summary: dict[str, Any], figure: str | None, task: str) -> Finding:
    first, last = summary["first_median"], summary["last_median"]
    term = floorless_term(summary)
    named = f" Which term: {term[1]}." if term else ""
    evidence: dict[str, Any] = {"first_window_median": first, "last_window_median": last,
                                "fall_in_first_scales": summary["fall"], "fall_tau": summary["fall_tau"],
                                "second_half_fall_over_first": summary["fall_speedup"],
                                "past_any_floor": bool(summary.get("unbounded_deep")),
                                "last_finite_step": summary["last_finite_step"]}
    if term:
        evidence["term_without_floor"] = term[0]
        evidence["term_first_last"] = [summary["terms"][term[0]]["first"], summary["terms"][term[0]]["last"]]
    if term and term[2]:
        suggestion = (f"Add {'the KL term' if term[0] == LossTerms.LATENT_KL else f'`{term[0]}`'} to the loss "
                      "instead of subtracting it (it is ≥ 0 and must be minimised); then the loss has a floor again.")
    elif term:
        suggestion = f"Fix the formula of `{term[0]}`: it must be bounded below (for example ≥ 0)."
    else:
        suggestion = advice(UNBOUNDED_ADVICE, task)
    if summary.get("unbounded_deep"):
        how = (f"the last window lies {summary['fall']:.3g} starting scales below the first (its lowest window "
               f"median {summary['best_median']:.4g}), at least {LOSS_UNBOUNDED_DEPTH:g}: no floor that a loss "
               "starting at that scale has explains it (a Gaussian likelihood whose σ shrinks to float32's smallest "
               "number lowers a loss by about 87 nats per dimension, some 60 starting scales)")
    else:
        how = (f"{summary['fall']:.3g} times its starting scale, and kept falling to the end without slowing down "
               f"(the second half of the run fell {summary['fall_speedup']:.3g} times as far as the first; Kendall "
               f"tau {summary['fall_tau']:.2f} over the window medians)")
    return Finding(
        code="loss-unbounded-below", severity="critical",
        title=f"The loss falls without limit (to {last:.3g})",
        message=(f"The loss fell from a median of {first:.4g} in its first window to {last:.4g} in its last: {how}. "
                 "A loss that trains a model has a floor; this one has none, so the optimizer follows it to -∞ "
                 f"instead of fitting the data.{named}"),
        evidence=evidence, suggestion=suggestion, figure=figure,
    )


def diverging_title(summary: dict[str, Any]) -> str:
    """A title that says what the evidence shows: a rise only when the trend rises, else a blow-up or a swing that
    grows."""
    if summary["trend_up"]:
        return "The loss grows instead of falling"
    if summary["blew_up"]:
        return (f"The loss jumped to {summary['peak_median'] / summary['best_median']:.3g}× its best window median"
                if summary["best_median"] > 0 else "The loss jumped far above its best window")
    return f"The loss swings more and more ({summary['oscillation_growth']:.3g}× its calmest window)"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."

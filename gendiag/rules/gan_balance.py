"""GAN balance rules on the `BalanceLog` table (`gendiag.quantities.gan_balance`).

- `gan-d-dominates`: for a sustained stretch D calls almost every fake a fake (median D(fake) below
  `GAN_FAKE_NEAR_ZERO`) with accuracy above `GAN_ACCURACY_NEAR_ONE`; the generator then learns from a saturated
  discriminator.
- `gan-d-output-squashed`: D's outputs all lie in [0, 1] (a Sigmoid ends D) while the loss reads them as logits
  (declared `d_output="logit"`, or `loss_d` equals BCE-with-logits of the reported outputs, not BCE of them as
  probabilities): D's loss has a floor of log 2 + log(1 + e^-1) and G's gradient vanishes.
- `gan-oscillation`: the swing of both losses grows over the run (by `GAN_OSC_GROWTH`, steadily, and to at least
  `GAN_OSC_MIN_AMPLITUDE`): the players chase each other instead of converging.
- `gan-g-objective-inverted`: step by step G's loss moves with D(fake) (rank correlation of their changes at least
  `GAN_INVERTED_CORRELATION`) where every generator objective moves against it: G's loss falls as D's accuracy on
  fakes rises, G minimises the wrong objective."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.findings import Finding
from gendiag.metrics.statistics import spearman_rho
from gendiag.quantities.gan_balance import LOGIT_FLOOR, SEGMENTS, Swing, longest_run, swing_growth
from gendiag.rules.thresholds import (GAN_ACCURACY_NEAR_ONE, GAN_FAKE_NEAR_ZERO, GAN_GRAD_VANISHED,
                                      GAN_INVERTED_CORRELATION, GAN_INVERTED_MIN_STEPS, GAN_MIN_STRETCH_SHARE, GAN_MIN_STRETCH_STEPS, GAN_OSC_GROWTH,
                                      GAN_OSC_MIN_AMPLITUDE, GAN_OSC_MIN_STEPS, GAN_OSC_RANK_CORRELATION,
                                      GAN_SQUASHED_MIN_STEPS, GAN_SQUASHED_STEPS)

if TYPE_CHECKING:
    import pandas as pd


def dominated_stretch(frame: pd.DataFrame, d_output: str | None) -> tuple[int, int] | None:
    """Row indices [first, last] of the longest sustained stretch in which D wins, or None (always for a critic,
    whose values are no probabilities)."""
    if d_output == "critic" or frame["d_fake"].notna().sum() < GAN_MIN_STRETCH_STEPS:
        return None
    window = max(5, len(frame) // 50)
    fake = frame["d_fake"].rolling(window, min_periods=1).median()
    accuracy = frame["d_accuracy"].rolling(window, min_periods=1).median()
    dominated = ((fake < GAN_FAKE_NEAR_ZERO) & (accuracy > GAN_ACCURACY_NEAR_ONE)).to_numpy()
    first, last = longest_run(dominated)
    if first is None or last - first + 1 < max(GAN_MIN_STRETCH_STEPS, GAN_MIN_STRETCH_SHARE * len(frame)):
        return None
    return first, last


def d_dominates(frame: pd.DataFrame, d_output: str | None, figure: str | None) -> Finding | None:
    """The `gan-d-dominates` finding, or None."""
    stretch = dominated_stretch(frame, d_output)
    if stretch is None:
        return None
    first, last = stretch
    inside = frame.iloc[first:last + 1]
    evidence: dict[str, Any] = {
        "from_step": int(inside["step"].iloc[0]), "to_step": int(inside["step"].iloc[-1]),
        "share_of_run": round((last - first + 1) / len(frame), 3),
        "median_d_fake": plain(inside["d_fake"].median()), "median_d_real": plain(inside["d_real"].median()),
        "median_d_accuracy": plain(inside["d_accuracy"].median()),
        "median_loss_g": plain(inside["loss_g"].median()),
        "d_output": d_output,
    }
    vanishing = ""
    before = frame["grad_norm_g"].iloc[:max(first, max(1, len(frame) // 20))]
    if inside["grad_norm_g"].notna().any() and before.notna().any() and before.median() > 0:
        ratio = float(inside["grad_norm_g"].median() / before.median())
        evidence["grad_norm_g_in_stretch"] = plain(inside["grad_norm_g"].median())
        evidence["grad_norm_g_before"] = plain(before.median())
        evidence["grad_norm_g_ratio"] = round(ratio, 4)
        if ratio < GAN_GRAD_VANISHED:
            vanishing = f" The generator's gradient norm fell to {ratio:.1%} of its value before the stretch."
    to_end = last == len(frame) - 1
    return Finding(
        code="gan-d-dominates", severity="critical" if to_end else "warning",
        title=(f"The discriminator wins: median D(fake) {evidence['median_d_fake']:.3f}, accuracy "
               f"{evidence['median_d_accuracy']:.0%} over steps {evidence['from_step']}–{evidence['to_step']}"),
        message=(f"For {evidence['share_of_run']:.0%} of the run (steps {evidence['from_step']}–"
                 f"{evidence['to_step']}{', to the end of training' if to_end else ''}) the discriminator "
                 f"rejected nearly every generated sample (median D(fake) {evidence['median_d_fake']:.3f}, "
                 f"D(real) {evidence['median_d_real']:.3f}) with accuracy "
                 f"{evidence['median_d_accuracy']:.1%}. A saturated discriminator gives the generator "
                 f"little direction to learn from (median generator loss {fmt(evidence['median_loss_g'])})."
                 + vanishing),
        evidence=evidence, figure=figure,
        suggestion=("Rebalance the players: lower D's learning rate or its number of updates per G update (or "
                    "update G twice per D step), shrink D or add dropout, smooth the real labels (0.9), add "
                    "instance noise or spectral normalization to D, keep the non-saturating generator loss; "
                    "or train with WGAN-GP, whose critic keeps giving useful gradients when it wins."),
    )


def squashed(frame: pd.DataFrame, d_output: str | None, sigmoid_ended: list[str], watched: int,
             figure: str | None) -> Finding | None:
    """The `gan-d-output-squashed` finding, or None: at least GAN_SQUASHED_MIN_STEPS steps reported D's outputs,
    in GAN_SQUASHED_STEPS of them all within [0, 1], and the loss reads them as logits (declared, or loss_d equal
    to BCE-with-logits of them and not to BCE of them as probabilities in that share of the steps). Outputs of a
    logit D that barely trains can lie in [0, 1] too, so where networks are watched one of them must end in a
    Sigmoid (`sigmoid_ended`); with none watched the finding is a warning."""
    reported = frame[frame["d_min"].notna()]
    if d_output == "critic" or len(reported) < GAN_SQUASHED_MIN_STEPS or (watched and not sigmoid_ended):
        return None
    in_unit = float(((reported["d_min"] >= 0) & (reported["d_max"] <= 1)).mean())
    with_loss = reported[reported["loss_d_as_logits"].notna()]
    as_logits = float(with_loss["loss_d_as_logits"].mean()) if len(with_loss) else 0.0
    as_probs = float(with_loss["loss_d_as_probs"].mean()) if len(with_loss) else 0.0
    read_as_logits = d_output == "logit" or (len(with_loss) >= GAN_SQUASHED_MIN_STEPS and as_logits >= GAN_SQUASHED_STEPS
                                            and as_probs <= 1 - GAN_SQUASHED_STEPS)
    if in_unit < GAN_SQUASHED_STEPS or not read_as_logits:
        return None
    where = (f"{' and '.join(sigmoid_ended)} ends in a Sigmoid, " if sigmoid_ended else
             "(D is not watched, so its last layer could not be checked) ")
    how = ("you declared d_output=\"logit\"" if d_output == "logit" else
           f"the loss_d you report equals BCE-with-logits of exactly these outputs at {as_logits:.0%} of "
           f"{len(with_loss)} steps (and BCE of them as probabilities at {as_probs:.0%})")
    evidence: dict[str, Any] = {
        "steps": len(reported), "share_outputs_in_0_1": round(in_unit, 3),
        "output_min": plain(reported["d_min"].min()), "output_max": plain(reported["d_max"].max()),
        "declared_d_output": d_output, "loss_d_matches_logits": round(as_logits, 3),
        "loss_d_matches_probs": round(as_probs, 3), "loss_d_floor_summed": round(LOGIT_FLOOR, 4),
        "loss_d_floor_averaged": round(LOGIT_FLOOR / 2, 4), "min_loss_d": plain(frame["loss_d"].min()),
        "from_step": int(reported["step"].iloc[0]), "to_step": int(reported["step"].iloc[-1]),
        "networks_ending_in_sigmoid": sigmoid_ended,
        "loss_d_averaged": bool(with_loss["loss_d"].median() < LOGIT_FLOOR) if len(with_loss) else False,
    }
    return Finding(
        code="gan-d-output-squashed", severity="critical" if sigmoid_ended else "warning",
        title="D outputs probabilities where the loss expects logits: D's loss has a floor, G gets no gradient",
        message=(f"Over steps {evidence['from_step']}–{evidence['to_step']}, {in_unit:.0%} of the "
                 f"{len(reported)} reported steps had every output of D within [0, 1] (overall "
                 f"{fmt(evidence['output_min'])} to {fmt(evidence['output_max'])}): {where}while {how}. The "
                 f"Sigmoid squashes D's outputs, and the loss applies a second sigmoid: D(real) can reach at most "
                 f"σ(1) = 0.73 and D(fake) at least σ(0) = 0.5, so D's loss cannot fall below log 2 + "
                 f"log(1 + e⁻¹) = {LOGIT_FLOOR:.3f} (summed; {LOGIT_FLOOR / 2:.3f} averaged; the lowest reported was "
                 f"{fmt(evidence['min_loss_d'])}), and the generator's gradient through two sigmoids vanishes."),
        evidence=evidence, figure=figure,
        suggestion=("Remove one of the two sigmoids: drop the final Sigmoid from D and keep BCEWithLogitsLoss (the "
                    "stable choice), or keep the Sigmoid and use BCELoss; then pass D's raw outputs to mon.step with "
                    "d_output=\"logit\" (or \"prob\")."),
    )


def growing(swing: Swing) -> bool:
    """The swing grew by `GAN_OSC_GROWTH`, steadily, to a size worth a finding."""
    return (swing.growth >= GAN_OSC_GROWTH and swing.rank_correlation >= GAN_OSC_RANK_CORRELATION
            and swing.amplitudes[-1] >= GAN_OSC_MIN_AMPLITUDE)


def oscillation(frame: pd.DataFrame, figure: str | None) -> Finding | None:
    """The `gan-oscillation` finding, or None."""
    swings = {key: swing_growth(frame[key].to_numpy(), int(GAN_OSC_MIN_STEPS)) for key in ("loss_d", "loss_g")}
    measured = {key: value for key, value in swings.items() if value is not None}
    if not measured or not all(growing(value) for value in measured.values()):
        return None
    steps = frame["step"].to_numpy()
    evidence: dict[str, Any] = {"segments": SEGMENTS, "from_step": int(steps[len(steps) // 10]),
                                "to_step": int(steps[-1])}
    for key, value in measured.items():
        evidence[f"{key}_swing_by_segment"] = [round(a, 4) for a in value.amplitudes]
        evidence[f"{key}_growth"] = round(value.growth, 2)
    headline = max(measured.values(), key=lambda v: v.growth)
    return Finding(
        code="gan-oscillation", severity="warning",
        title=f"The GAN losses swing with growing amplitude (×{headline.growth:.1f} over the run)",
        message=(f"After removing per-step noise and each segment's drift, the swing of "
                 f"{' and '.join(measured)} grew segment by segment over steps {evidence['from_step']}–"
                 f"{evidence['to_step']} ("
                 + "; ".join(f"{key}: {' → '.join(f'{a:.3f}' for a in value.amplitudes)}"
                             for key, value in measured.items())
                 + "). The discriminator and the generator are chasing each other instead of settling."),
        evidence=evidence, figure=figure,
        suggestion=("Lower both learning rates (or β1 of Adam to 0.5 or 0), update the players alternately "
                    "rather than simultaneously, and regularize D (gradient penalty: WGAN-GP or R1, spectral "
                    "normalization); a two time-scale update (D faster than G) also damps the cycle."),
    )


def g_objective_inverted(frame: pd.DataFrame, d_output: str | None, figure: str | None) -> Finding | None:
    """The `gan-g-objective-inverted` finding, or None: over at least GAN_INVERTED_MIN_STEPS consecutive steps
    reporting both loss_g and D(fake), the rank correlation of their step-to-step changes is
    GAN_INVERTED_CORRELATION or more, unless over the run G's loss fell while D(fake) rose (the healthy direction,
    first quarter against last). Every generator objective falls as D rates the fakes more real, so from one
    step to the next G's loss and D(fake) move in opposite directions (changes, not levels: a term of G's loss
    that falls over the run, such as a reconstruction term, does not move with D's rating step by step)."""
    both = frame[np.isfinite(frame["loss_g"]) & np.isfinite(frame["d_fake"])]
    if len(both) < GAN_INVERTED_MIN_STEPS:
        return None
    loss_change, fake_change = np.diff(both["loss_g"].to_numpy()), np.diff(both["d_fake"].to_numpy())
    if np.ptp(loss_change) == 0 or np.ptp(fake_change) == 0:
        return None
    correlation = spearman_rho(loss_change, fake_change)
    if not correlation >= GAN_INVERTED_CORRELATION:
        return None
    quarter = max(1, len(both) // 4)
    first, last = both.iloc[:quarter], both.iloc[-quarter:]
    loss_first, loss_last = float(first["loss_g"].median()), float(last["loss_g"].median())
    fake_first, fake_last = float(first["d_fake"].median()), float(last["d_fake"].median())
    if loss_last < loss_first and fake_last > fake_first:  # G's loss falls as D rates its fakes more real: the
        return None  # healthy direction (a DCGAN, dcgan_mnist, had changes correlated +0.82 and went so)
    accuracy_first, accuracy_last = plain(first["d_fake_accuracy"].median()), plain(last["d_fake_accuracy"].median())
    steps = (int(both["step"].iloc[0]), int(both["step"].iloc[-1]))
    rating = "the critic's value on fakes" if d_output == "critic" else "D(fake)"
    accuracy = ("" if accuracy_first is None or accuracy_last is None else
                f"; D's accuracy on fakes went from {accuracy_first:.0%} to {accuracy_last:.0%}")
    evidence: dict[str, Any] = {
        "from_step": steps[0], "to_step": steps[1], "steps": len(both),
        "rank_correlation_of_changes": round(correlation, 4),
        "loss_g_first_quarter": round(loss_first, 6), "loss_g_last_quarter": round(loss_last, 6),
        "d_fake_first_quarter": round(fake_first, 6), "d_fake_last_quarter": round(fake_last, 6),
        "d_fake_accuracy_first_quarter": accuracy_first, "d_fake_accuracy_last_quarter": accuracy_last,
        "d_output": d_output, "threshold_correlation": GAN_INVERTED_CORRELATION,
    }
    return Finding(
        code="gan-g-objective-inverted", severity="critical",
        title="The generator minimises the wrong objective: its loss falls whenever D rates its samples more fake",
        message=(f"Over steps {steps[0]}–{steps[1]}, from one step to the next the generator's loss rises and "
                 f"falls with {rating} (rank correlation of their changes {correlation:+.2f}), where every "
                 "generator objective (non-saturating −log D(G(z)), minimax log(1 − D(G(z))), hinge or Wasserstein "
                 "−D(G(z))) falls as D rates the fakes more real. G's loss went from "
                 f"{loss_first:.4g} to {loss_last:.4g} (medians of the first and last quarter) and {rating} from "
                 f"{fake_first:.3g} to {fake_last:.3g}{accuracy}: G is trained to make its samples easier to "
                 "reject, helping D instead of fooling it."),
        evidence=evidence, figure=figure,
        suggestion=("Give G's loss the real label on its fakes: `bce(D(G(z)), ones)` (not zeros), "
                    "`-D(G(z)).mean()` for a critic or hinge loss (not `+`), `-log D(G(z))` or `log(1 - D(G(z)))`; "
                    "and step G's optimizer on that loss, not on D's."),
    )


def fmt(value: Any) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def plain(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None

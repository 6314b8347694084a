"""Rules on what the optimizer does over the run: `lr-decayed-to-zero` (a learning rate at about 0 for a large
part of the run) and `weight-decay-dominates` (the weights shrink steadily while the loss does not improve)."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding
from gendiag.rules.thresholds import (
    LR_MIN_READINGS, LR_ZERO_CRITICAL, LR_ZERO_FRACTION, LR_ZERO_SHARE, WD_LOSS_FLAT, WD_MIN_STEPS, WD_SHRINK,
)

LR_ADVICE = ("Make the schedule end where the run ends: give the scheduler the number of times it is stepped "
             "(`T_max`/`total_iters`/`num_training_steps` in optimizer steps when `scheduler.step()` is called every "
             "batch, in epochs when it is called every epoch), step it once per optimizer step or epoch, not more, "
             "and check the decay factor (`gamma` of ExponentialLR applies at every step).")
WD_ADVICE = ("Lower the weight decay (AdamW: 0.01 to 0.1; SGD/Adam with L2: 1e-5 to 1e-4) or the learning rate it "
             "multiplies, exclude biases and normalisation weights from it, and check that it is not added twice "
             "(an optimizer's weight_decay and an L2 term in the loss).")


def lr_decayed(fall: dict[str, Any] | None, figure: str | None) -> list[Finding]:
    """`lr-decayed-to-zero`: over at least LR_MIN_READINGS readings, the learning rate spent at least LR_ZERO_SHARE of
    the run (critical from LR_ZERO_CRITICAL) below LR_ZERO_FRACTION of its peak, after the peak. `figure`: the
    run-relative path of the figure that shows it."""
    if fall is None or fall["readings"] < LR_MIN_READINGS or fall["first_below_step"] is None:
        return []
    share = fall["share_below"]
    if share < LR_ZERO_SHARE:
        return []
    label, first, peak = fall["label"], fall["first_below_step"], fall["peak"]
    message = (f"The learning rate of {label} peaked at {peak:.3g} (step {fall['peak_step']}) and fell below "
               f"{LR_ZERO_FRACTION:g} of that peak at step {first}, with {fall['share_left']:.0%} of the run (steps "
               f"{fall['first_step']}–{fall['last_step']}) still to go; it spent {share:.0%} of the run there and "
               f"ends at {fall['last']:.3g}. Steps at a learning rate of about 0 do not change the weights: that part "
               "of the run trains nothing. A schedule whose length is given in epochs but stepped every batch (or "
               "the reverse), or a decay factor applied at every step, ends long before the run.")
    evidence = {"optimizer": label, "peak_lr": peak, "peak_step": fall["peak_step"], "first_below_step": first,
                "share_of_run_left": round(fall["share_left"], 4), "share_of_run_below": round(share, 4),
                "last_lr": fall["last"], "first_step": fall["first_step"], "last_step": fall["last_step"],
                "threshold_fraction": LR_ZERO_FRACTION, "threshold_share": LR_ZERO_SHARE,
                "threshold_critical": LR_ZERO_CRITICAL}
    return [Finding(code="lr-decayed-to-zero", severity="critical" if share >= LR_ZERO_CRITICAL else "warning",
                    title=f"The learning rate is about 0 from step {first}, {fall['share_left']:.0%} of the run "
                          "before its end",
                    message=message, evidence=evidence, suggestion=LR_ADVICE, figure=figure)]


def weight_decay_dominates(shrink: dict[str, Any] | None, weight_decay: float | None,
                           figure: str | None) -> list[Finding]:
    """`weight-decay-dominates` (warning): over at least WD_MIN_STEPS steps after their peak the watched weights'
    norm fell by WD_SHRINK or more while the loss improved by less than WD_LOSS_FLAT of its value at the peak.
    `figure`: the run-relative path of the figure that shows it."""
    if shrink is None or shrink["last_step"] - shrink["peak_step"] < WD_MIN_STEPS:
        return []
    if not (shrink["shrink"] >= WD_SHRINK and shrink["loss_improvement"] < WD_LOSS_FLAT):
        return []
    decay = "" if weight_decay is None else f" The watched optimizers' largest weight decay is {weight_decay:g}."
    loss = ("got worse" if shrink["loss_improvement"] < 0 else f"improved by only {shrink['loss_improvement']:.1%}")
    message = (f"The norm of the trained networks' weights fell from {shrink['peak_norm']:.4g} at step "
               f"{shrink['peak_step']} to {shrink['end_norm']:.4g} at the end (step {shrink['last_step']}), "
               f"{shrink['shrink']:.0%} less, while the loss {loss} (from {shrink['loss_at_peak']:.4g} to "
               f"{shrink['loss_at_end']:.4g}). Weights that shrink while the loss stays where it was are pulled by "
               f"the weight decay, not by the data: it is stronger than the gradient of the loss.{decay}")
    evidence = {"peak_norm": round(shrink["peak_norm"], 6), "peak_step": shrink["peak_step"],
                "end_norm": round(shrink["end_norm"], 6), "last_step": shrink["last_step"],
                "shrink": round(shrink["shrink"], 4), "loss_at_peak": round(shrink["loss_at_peak"], 6),
                "loss_at_end": round(shrink["loss_at_end"], 6),
                "loss_improvement": round(shrink["loss_improvement"], 4), "weight_decay": weight_decay,
                "threshold_shrink": WD_SHRINK, "threshold_loss_flat": WD_LOSS_FLAT}
    return [Finding(code="weight-decay-dominates", severity="warning",
                    title=f"The weights shrink by {shrink['shrink']:.0%} while the loss does not improve",
                    message=message, evidence=evidence, suggestion=WD_ADVICE, figure=figure)]

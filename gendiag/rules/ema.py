"""Rule on an EMA copy against the network it follows: `ema-lagging` (the copy's weights moved far less than the
network's over the run: its decay averages over about as many steps as the run has, or it is never updated)."""

from __future__ import annotations

import math

from gendiag.findings import Finding
from gendiag.quantities.ema import EmaTrack
from gendiag.rules.thresholds import EMA_LAG_CRITICAL, EMA_LAG_WARNING, EMA_MIN_MODEL_MOVE, EMA_MIN_STEPS

ADVICE = ("Lower the EMA decay so that it averages over a small part of the run: a decay d averages about the last "
          "1/(1 - d) steps (0.999: 1,000 steps; 0.9999: 10,000), so keep 1/(1 - d) at a tenth of the run's steps or "
          "less, or warm the decay up (`min(d, (1 + n) / (10 + n))` at update n). Check that the copy's update is "
          "called after every optimizer step, on this copy, and that the copy sampled from is the one updated.")


def ema_lagging(track: EmaTrack, figure: str | None) -> list[Finding]:
    """`ema-lagging`: at the last reading, EMA_MIN_STEPS or more after the copy was watched and with the network
    moved at least EMA_MIN_MODEL_MOVE of its starting norm, the copy moved less than EMA_LAG_WARNING of the
    network's distance (critical under EMA_LAG_CRITICAL). Distances that are not finite are not judged. `figure`:
    the run-relative path of the figure that shows it."""
    if not track.readings:
        return []
    last = track.readings[-1]
    steps = last.step - track.start_step
    if not (math.isfinite(last.ema_moved) and math.isfinite(last.model_moved)):  # weights that overflowed
        return []
    if steps < EMA_MIN_STEPS or last.model_moved < EMA_MIN_MODEL_MOVE * max(last.model_norm, 1e-12):
        return []
    ratio = last.ema_moved / last.model_moved
    if ratio >= EMA_LAG_WARNING:
        return []
    ema, follows = track.ema, track.follows
    still = ("Its weights never changed: its update is never called, or updates another copy than the one "
             "watched and sampled from." if last.ema_moved == 0 else
             f"An EMA averages about the last 1/(1 - decay) steps; a copy that covered {ratio:.0%} of the way in "
             f"{steps} steps averages over more steps than the run has, so it still holds much of its initial "
             "weights.")
    message = (f"Over the {steps} steps since `{ema}` was watched, the network it follows, `{follows}`, moved "
               f"{last.model_moved:.4g} from its starting weights (Euclidean distance over all parameters; "
               f"{last.model_moved / max(last.model_norm, 1e-12):.1%} of their norm), while `{ema}` moved "
               f"{last.ema_moved:.4g}: {ratio:.1%} of the network's distance (below {EMA_LAG_WARNING:.0%}); the two "
               f"are now {last.gap:.4g} apart. {still} Samples drawn from `{ema}` come from a model much closer to "
               "the initial one than the network trained.")
    evidence = {"ema": ema, "follows": follows, "steps": steps, "at_step": last.step,
                "ema_moved": round(last.ema_moved, 6), "model_moved": round(last.model_moved, 6),
                "moved_ratio": round(ratio, 4), "ema_model_gap": round(last.gap, 6),
                "model_start_norm": round(last.model_norm, 6),
                "threshold_warning": EMA_LAG_WARNING, "threshold_critical": EMA_LAG_CRITICAL}
    return [Finding(code="ema-lagging", severity="critical" if ratio < EMA_LAG_CRITICAL else "warning",
                    title=f"The EMA copy `{ema}` moved {ratio:.0%} as far as `{follows}` over the run",
                    message=message, evidence=evidence, suggestion=ADVICE, figure=figure)]

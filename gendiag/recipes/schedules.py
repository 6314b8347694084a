"""Learning-rate schedules shared by the training loops of the recipes."""

from __future__ import annotations

import math


def learning_rate(base: float, decay: str, step: int, steps: int) -> float:
    """The lr of step 1 … steps: constant, or cosine from `base` down to 0 (a pure function of the step, so a
    resumed run continues exactly)."""
    if decay == "none":
        return base
    return 0.5 * base * (1 + math.cos(math.pi * (step - 1) / steps))


def linear_decay_factor(step: int, steps: int, decay_from: float, decay_to: float) -> float:
    """The lr multiplier of step 1 … steps: 1 until `decay_from` of the steps, then linear down to `decay_to` at
    the last step (a pure function of the step, so a resumed run continues exactly)."""
    start = decay_from * steps
    if step <= start:
        return 1.0
    return 1.0 + (decay_to - 1.0) * (step - start) / (steps - start)

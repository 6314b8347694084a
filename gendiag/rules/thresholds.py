"""Every threshold a rule compares against, in one place, each with its basis: how the number was chosen
(derived from a definition, calibrated on named runs, or cited).

`threshold(name, value, basis)` registers the number in `THRESHOLDS` and returns it as a plain float, so a rule
reads `if ratio > LOSS_RISE:`. Names are "<probe>.<what>"."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    """A number a rule compares a measurement against, and where the number comes from."""

    name: str
    value: float
    basis: str


THRESHOLDS: dict[str, Threshold] = {}


def threshold(name: str, value: float, basis: str) -> float:
    """Register `value` under `name` with its one-line `basis`; returns the value."""
    if name in THRESHOLDS:
        raise ValueError(f"threshold {name!r} is defined twice")
    if not basis.strip():
        raise ValueError(f"threshold {name!r} has no basis")
    THRESHOLDS[name] = Threshold(name, float(value), basis)
    return float(value)


# --- loss, per-time loss, gradients, timing, schedule ---


# --- inputs, velocity field, sampler, data representation, memorization ---


# --- GAN balance, modes, VAE health, samples against data ---



# --- flattened story ---

STORY_SAMPLER_STILL = threshold(
    "flattened.sampler_still", 0.25,
    "chosen by hand in round 1 (e27ebe2): below a quarter of the straight path the story says the sampler hardly "
    "moves; the faithful flattened_moons moves 0.19 of it (docs/flattened_moons_faithful); not calibrated further")
STORY_UNREACHABLE = threshold(
    "flattened.unreachable_share", 0.25,
    "chosen by hand in round 1 (e27ebe2): the story names the last layer's span as a cause when more than a quarter "
    "of the needed move's energy lies outside it; flattened_checkerboard at 40 steps (4,096-D, 256 last units) 0.94")
STORY_RELAPSE = threshold(
    "flattened.relapse_cosine", 0.05,
    "chosen by hand in round 1 (e27ebe2): a fall of the cosine to the target from its best checkpoint smaller than "
    "this is read as noise between checkpoints, not as the picture falling back")

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


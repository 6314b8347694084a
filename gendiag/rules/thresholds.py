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
MODES_KL_HIGH = threshold(
    "mode-collapse.kl_high", 0.2,
    "nats; chosen by hand in round 1; separates the even 8-mode ring (about 0) from 20 of 27 draws on one mode "
    "(about 1.0) in tests/test_probe_modes.py")
MODES_MISS_CHANCE = threshold(
    "mode-collapse.miss_chance", 0.01,
    "derived: a 1% level on the union bound K (1 - 1/K)^n that an even generator misses some mode")
MODES_KL_NOISE_QUANTILE = threshold(
    "mode-collapse.kl_noise_quantile", 0.99,
    "derived: G-test at the 1% level (2 n KL against chi-squared with K - 1 degrees of freedom)")

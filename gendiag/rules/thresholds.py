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



# --- autoregressive ---
AR_LEAK_TOLERANCE = threshold(
    "autoregressive.leak_tolerance", 1e-3,
    "derived: a causal network's output does not move at all when inputs it cannot see change (measured exactly 0 "
    "on masked convolutions, a GRU and a causal transformer in tests/test_ar_*.py; float32 rounding would be 1e-7), "
    "while one input it sees moves it by 0.2 or more of its spread at initialisation (mask B first, no causal "
    "mask in attention) and by about 1 once trained")
AR_OFFSET_MARGIN = threshold(
    "autoregressive.offset_margin", 0.2,
    "chosen by hand: the target offset is read from the recorded outputs only when one offset's cross-entropy is at "
    "least 20% below the other's (a network trained on one offset is far better at it: 10x on the tests' token "
    "and pixel models); otherwise the convention stands (images: own position, sequences: the next one)")
AR_LOSS_FLOOR_FRACTION = threshold(
    "autoregressive.loss_floor_fraction", 0.5,
    "derived with a margin: no causal model's expected loss on the data goes below its entropy; a finite training "
    "set lets it go lower only by memorising rows, which a few hundred steps of a small model do not do by half "
    "(the healthy GRU loop of tests/test_ar_tokens.py ends at 0.99-1.01 of the entropy over seeds 0-7), while "
    "its copying twin (targets not shifted) ends at 0.0004")
AR_LEVEL_TOLERANCE = threshold(
    "autoregressive.level_tolerance", 1e-5,
    "derived: stored levels (0 and 1, k/255) are exact to float32 rounding (1e-7 of their span); a probability "
    "written back instead of a draw lies farther than 1e-5 of the span from both ends unless the model is that sure")
AR_OFF_LEVEL_SHARE = threshold(
    "autoregressive.off_level_share", 0.05,
    "chosen by hand: drawn values leave no sample value off the data's levels, and at the sampler's last call at "
    "most the one position not yet drawn (1/P, below 5% from P = 20 on, the only inputs judged); probabilities "
    "written back leave most values off-level (0.98 of the sampler's last inputs and all sample values on the "
    "binary PixelCNN of tests/test_ar_pixelcnn.py; 0 for its drawing sampler over seeds 0-7)")
AR_MIN_SAMPLES = threshold(
    "autoregressive.min_samples", 8,
    "chosen by hand: fewer observed samples than this say little about how many distinct ones the sampler makes")
AR_DISTINCT_RATIO = threshold(
    "autoregressive.distinct_ratio", 0.5,
    "chosen by hand: the samples' share of distinct rows below half the data's share over as many rows (all "
    "identical is critical); a sampler that draws gives about the data's share")

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

VELOCITY_IGNORES_X = threshold(
    "velocity.ignores_x", 0.1,
    "chosen by hand in round 1 (9ab7c0e); separates healthy moons (sensitivity to x > 0.5 at t = 0) from a network "
    "that drops x (< 0.001) in tests/test_probes_velocity.py")
VELOCITY_IGNORES_T = threshold(
    "velocity.ignores_t", 0.1,
    "chosen by hand in round 1 (9ab7c0e); separates healthy moons (silent) from a network that drops t "
    "(< 0.001) in tests/test_probes_velocity.py")

INPUTS_WARNING_RATIO = threshold(
    "inputs.warning_ratio", 0.4,
    "chosen by hand in round 1 (9ab7c0e); separates the healthy flow loop (every bin < 0.4) from the flagship's "
    "x0-fed network and a sampler twice too wide (>= 0.7) in tests/test_probes_inputs.py")
INPUTS_CRITICAL_RATIO = threshold(
    "inputs.critical_ratio", 0.7,
    "chosen by hand in round 1 (9ab7c0e); the x0-fed flagship network and a sampler twice too wide exceed it in "
    "tests/test_probes_inputs.py")
INPUTS_SIGNIFICANCE = threshold(
    "inputs.significance", 0.01, "a 1% level for the energy permutation test (200 relabellings), chosen in 9ab7c0e")
INPUTS_MIN_COEFFICIENT = threshold(
    "inputs.min_coefficient", 0.02,
    "calibrated in bde80b1: the healthy DDPM on the unit-scale swiss roll has a gap of energy coefficient 0.012 "
    "(info), the flagship and a sampler twice too wide well above (tests/test_probes_inputs.py)")
INPUTS_STATIC_RATIO = threshold(
    "inputs.static_ratio", 0.25,
    "chosen by hand in round 1 (9ab7c0e); a path from source to data changes the inputs by about 1 (healthy "
    "> 0.5), the x0-fed flagship network by about 0 (tests/test_probes_inputs.py)")
SAMPLER_FROZEN = threshold(
    "sampler.frozen", 1e-6,
    "chosen by hand in round 1 (9ab7c0e) as a bound on float rounding: a frozen sampler's state changes by 0, a "
    "working one's by far more (tests/test_probes_sampler.py)")
DATA_DISTINCT_WARNING = threshold(
    "data_repr.distinct_warning", 0.5,
    "derived: a batch stacked on its own copy is at most half distinct (tests/test_checks_representation.py); "
    "distinct data is near 1")
DATA_DISTINCT_CRITICAL = threshold(
    "data_repr.distinct_critical", 0.1,
    "chosen by hand in 56ca46e; the flagship's rendered moons hold about 1 distinct picture in 64 (critical), "
    "real images about all (tests/test_checks_representation.py)")
DATA_SCALE_HIGH = threshold(
    "data_repr.scale_high", 5.0,
    "chosen by hand in 56ca46e; images never divided by 255 exceed it, unit-scale data does not "
    "(test_unnormalized_bytes_and_scale in tests/test_checks_representation.py)")
DATA_SCALE_LOW = threshold(
    "data_repr.scale_low", 0.1,
    "chosen by hand in 56ca46e; images in [0, 1] (RMS 0.2-0.5) stay above it, data a tenth of the source's scale "
    "is not what a unit-scale source was meant for")
DATA_DUPLICATE_TOLERANCE = threshold(
    "data_repr.duplicate_tolerance", 0.25,
    "chosen in b8c4dcb between distinct digits (differ by about 1.0 of a sample's own spread) and two renders of "
    "one point cloud (about 0.1) (tests/test_checks_representation.py)")
RENDER_CONSISTENCY = threshold(
    "data_repr.render_consistency", 0.05,
    "chosen by hand in b8c4dcb; rendered moons images keep centroid and spread within it, real digits do not "
    "(tests/test_checks_representation.py)")
NOISE_MEAN_LIMIT = threshold(
    "data_repr.noise_mean", 0.2,
    "chosen by hand in b8c4dcb (or 5 standard errors, whichever is larger); N(0, I) batches pass, the flagship's "
    "rendered source does not (tests/test_checks_representation.py)")
NOISE_STD_LOW = threshold(
    "data_repr.noise_std_low", 0.5, "chosen by hand in b8c4dcb: a source std below half of N(0, I)'s is not it")
NOISE_STD_HIGH = threshold(
    "data_repr.noise_std_high", 2.0, "chosen by hand in b8c4dcb: a source std over twice N(0, I)'s is not it")
NOISE_KS_FLOOR = threshold(
    "data_repr.noise_ks_floor", 0.08,
    "chosen by hand in b8c4dcb (or 2/sqrt(n), the KS distance's scale, whichever is larger); N(0, I) batches "
    "pass, the flagship's binary source does not (tests/test_checks_representation.py)")
NOISE_INDEPENDENCE = threshold(
    "data_repr.noise_independence", 0.7,
    "chosen by hand in b8c4dcb; independent draws give about 1, a source of copies of one picture about 0 "
    "(tests/test_checks_representation.py)")
SOURCE_SIGNIFICANCE = threshold(
    "data_repr.source_significance", 0.01,
    "a 1% level for the energy permutation test (200 relabellings) of two source sets, chosen in ab6bee8")
SOURCE_MIN_COEFFICIENT = threshold(
    "data_repr.source_min_coefficient", 0.02,
    "the inputs probe's material gap (calibrated in bde80b1 on the unit-scale swiss roll, 0.012 healthy), "
    "reused for source sets in ab6bee8")


# --- GAN balance, modes, VAE health, samples against data ---


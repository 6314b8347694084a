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
GAN_FAKE_NEAR_ZERO = threshold(
    "gan-balance.fake_near_zero", 0.1,
    "chosen by hand in round 1; the far too strong D of tests/test_probes_gan_balance.py has median D(fake) 0.006, "
    "the healthy small GAN there ends at 0.45")
GAN_ACCURACY_NEAR_ONE = threshold(
    "gan-balance.accuracy_near_one", 0.9,
    "chosen by hand in round 1; the far too strong D of tests/test_probes_gan_balance.py has accuracy 1.0, the "
    "healthy small GAN there 0.5")
GAN_MIN_STRETCH_STEPS = threshold(
    "gan-balance.min_stretch_steps", 20,
    "chosen by hand in round 1: a stretch shorter than this many steps is not sustained")
GAN_MIN_STRETCH_SHARE = threshold(
    "gan-balance.min_stretch_share", 0.2,
    "chosen by hand in round 1; the far too strong D of tests/test_probes_gan_balance.py wins for 0.95 of its run")
GAN_GRAD_VANISHED = threshold(
    "gan-balance.grad_vanished", 0.1,
    "chosen by hand in round 1; words the gan-d-dominates message only (G's gradient norm against before)")
GAN_OSC_GROWTH = threshold(
    "gan-balance.osc_growth", 2.0,
    "chosen by hand in round 1; the simultaneous Dirac GAN of tests/test_probes_gan_balance.py grows x2.94 "
    "(radius x sqrt(1 + lr^2) a step), the alternating one stays bounded")
GAN_OSC_RANK_CORRELATION = threshold(
    "gan-balance.osc_rank_correlation", 0.7,
    "chosen by hand in round 1: the swing grows in most segments (the simultaneous Dirac GAN: in all five)")
GAN_OSC_MIN_AMPLITUDE = threshold(
    "gan-balance.osc_min_amplitude", 0.05,
    "nats; chosen by hand in round 1: a smaller last swing is not worth a finding (the Dirac GAN's: 2.7)")
GAN_OSC_MIN_STEPS = threshold(
    "gan-balance.osc_min_steps", 100,
    "chosen by hand in round 1: fewer steps give five segments too short to fit a trend")
VAE_ACTIVE_VARIANCE = threshold(
    "vae-health.active_variance", 0.01,
    "cited: Burda, Grosse and Salakhutdinov 2016 (IWAE), a unit is active when Cov_x(E_q[u]) > 0.01")
VAE_COLLAPSED_ACTIVE_SHARE = threshold(
    "vae-health.collapsed_active_share", 0.1,
    "chosen by hand in round 1; separates the healthy MLP VAE (2 of 4 active) from KL weight 200 (0 of 4) in "
    "tests/test_probes_vae_health.py")
VAE_VANISHED_KL_PER_DIM = threshold(
    "vae-health.vanished_kl_per_dim", 0.01,
    "nats; chosen by hand in round 1; the healthy MLP VAE of tests/test_probes_vae_health.py has 0.40 per "
    "dimension, its vanished-KL case 0.0013 with 4 of 20 units past the activity threshold")
_SVD_MARGINS = "the margins in gendiag/probes/samples_vs_data.py's docstring (tests/test_foreign_samples.py)"
SVD_SCALE_CRITICAL = threshold(
    "samples_vs_data.scale_critical", 3.0,
    "calibrated: healthy 2-D loops keep the std ratio within 0.79-1.15, broken samplers reach 1.3-3.2; " + _SVD_MARGINS)
SVD_SCALE_WARNING = threshold(
    "samples_vs_data.scale_warning", 2.0, "calibrated: healthy std ratio 0.79-1.15; " + _SVD_MARGINS)
SVD_OFFSET_CRITICAL = threshold(
    "samples_vs_data.offset_critical", 1.0,
    "data spreads; calibrated: healthy <= 0.16, flattened_moons 3.4; " + _SVD_MARGINS)
SVD_OFFSET_WARNING = threshold(
    "samples_vs_data.offset_warning", 0.5, "data spreads; calibrated: healthy <= 0.16; " + _SVD_MARGINS)
SVD_OFFSET_WITH_MODES = threshold(
    "samples_vs_data.offset_with_modes", 2.0,
    "data spreads; derived: a mode of the 5x5 grid lies 1.4 spreads from the mean, so samples piled on one mode "
    "stay under it; " + _SVD_MARGINS)
SVD_W2_FLOOR_CRITICAL = threshold(
    "samples_vs_data.w2_floor_critical", 5.0,
    "times the data-vs-data floor; calibrated: healthy <= 4.0, broken samplers 8.5-31; " + _SVD_MARGINS)
SVD_W2_SPREAD_CRITICAL = threshold(
    "samples_vs_data.w2_spread_critical", 0.6,
    "data spreads; calibrated: healthy <= 0.40, broken samplers 0.94-3.1; " + _SVD_MARGINS)
SVD_W2_FLOOR_WARNING = threshold(
    "samples_vs_data.w2_floor_warning", 4.0,
    "times the floor; calibrated: healthy <= 4.0 (the 100-step DDPM), pointcloud_moons at 500 steps 2.9; "
    + _SVD_MARGINS)
SVD_W2_SPREAD_WARNING = threshold(
    "samples_vs_data.w2_spread_warning", 0.5, "data spreads; calibrated: healthy <= 0.40; " + _SVD_MARGINS)
SVD_COVERAGE_WARNING = threshold(
    "samples_vs_data.coverage_warning", 0.3,
    "share of the coverage floor; calibrated: healthy >= 0.40; " + _SVD_MARGINS)
SVD_COVERAGE_W2_FLOOR = threshold(
    "samples_vs_data.coverage_w2_floor", 3.0,
    "times the W2 floor that must go with a low coverage; calibrated: tests/loops.py train_flow 2.9x; " + _SVD_MARGINS)
SVD_FLOOR_MARGIN = threshold(
    "samples_vs_data.floor_margin", 2.0,
    "chosen by hand: every limit at least twice the data-vs-data deviation at the samples' size (for the std ratio "
    "in log), so that a handful of samples cannot fire")
MEM_COPY_QUANTILE = threshold(
    "memorization.copy_quantile", 0.01,
    "derived: a near-copy is closer, relative to the local spacing, than 99% of held-out real samples, so a "
    "generator that generalizes makes about 1% of them")
MEM_COPY_SHARE_MIN = threshold(
    "memorization.copy_share_min", 0.10,
    "chosen by hand in round 1; tests/test_probe_memorization.py: copies 0.96 and 1.0, fresh and collapsed "
    "samples under 0.05")
MEM_COPY_SHARE_FACTOR = threshold(
    "memorization.copy_share_factor", 5.0,
    "chosen by hand in round 1: five times the share expected of a generator that generalizes")
MEM_Z_COPYING = threshold(
    "memorization.z_copying", -3.0,
    "derived: a one-sided 3-sigma level of the Mann-Whitney z (Meehan, Chaudhuri and Dasgupta 2020's test); the "
    "copies of tests/test_probe_memorization.py reach -37 and -19")
MEM_CRITICAL_SHARE = threshold(
    "memorization.critical_share", 0.5,
    "chosen by hand in round 1: most generated samples are copies")

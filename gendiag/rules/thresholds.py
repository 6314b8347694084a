"""Every threshold a rule compares against, in one place, each with its basis: how the number was chosen
(derived from a definition, calibrated on named runs, or cited).

`threshold(name, value, basis)` registers the number in `THRESHOLDS` and returns it as a plain float, so a rule
reads `if ratio > LOSS_RISE:`. Names are "<probe>.<what>". Over 400 lines on purpose: every threshold of every rule
in one file, so that they are reviewed and calibrated together."""

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
LOSS_MIN_POINTS = threshold(
    "loss.min_points", 50,
    "chosen by hand in round 1: ten windows of at least five losses each; a 20-step run is not judged "
    "(tests/test_probes_loss.py::test_short_runs_are_not_judged)")
LOSS_RISE = threshold(
    "loss.rise", 1.0,
    "chosen by hand in round 1 (last window twice the best level); loss-diverging fires on the growing learning "
    "rate (lr_growth 1.04) and stays silent on healthy flow matching in tests/test_probes_loss.py")
LOSS_RISE_TAU = threshold(
    "loss.rise_tau", 0.5,
    "chosen by hand in round 1: Kendall's tau of the window medians after the best, a mostly monotone rise; "
    "separates the rising from the falling series in tests/test_probes_loss.py::test_trend_rules_on_known_series")
LOSS_BLOWUP = threshold(
    "loss.blowup", 9.0,
    "chosen by hand in round 1 (a window ten times the best level); not calibrated on runs")
LOSS_OSCILLATION_GROWTH = threshold(
    "loss.oscillation_growth", 4.0,
    "chosen by hand in round 1; a swing growing 10x fires and a flat noisy loss (1.1x) stays silent in "
    "tests/test_probes_loss.py::test_trend_rules_on_known_series")
LOSS_OSCILLATION_NOISE_QUANTILE = threshold(
    "loss.oscillation_noise_quantile", 0.9995,
    "measured in round 2: the growth of the swing compares window medians of step-to-step changes, and flat "
    "Gaussian noise split into ten windows reaches 4x (with the last median above the best) in 22% of series of 50 "
    "losses, 8.6% of 100, 0.6% of 200 (it did on the 200-step flagship, 4.3x); on fewer than 30 losses a window "
    "the growth must pass this quantile of noise's, LOSS_SWING_GROWTH_OF_NOISE (tests/test_probes_loss.py::"
    "test_a_noisy_flat_loss_of_few_points_is_not_called_oscillating)")
LOSS_SWING_GROWTH_OF_NOISE = ((5, 37.4), (10, 13.3), (15, 6.8), (20, 5.6), (30, 3.8))  # (losses a window, growth)
LOSS_SPIKE_MADS = threshold(
    "loss.spike_mads", 10.0,
    "chosen by hand in round 1: far outside a window's spread (10 median absolute deviations, about 6.7 sigma for "
    "Gaussian noise); counted in the report only, no finding depends on it")
LOSS_T_LOSS_SHARE = threshold(
    "loss_by_t.loss_share", 0.8,
    "chosen by hand in round 1 (8x an even 10%); healthy flow matching < 0.25 against the flagship's > 0.99 "
    "(tests/test_probes_loss.py); a healthy epsilon DDPM puts about 0.45 on its least noisy tenth")
LOSS_T_VARIANCE_SHARE = threshold(
    "loss_by_t.variance_share", 0.9,
    "chosen by hand in round 1; healthy flow matching < 0.35 and a healthy epsilon DDPM about 0.65 "
    "(tests/test_probes_loss.py) stay below it")
LOSS_T_EXPLODES_WARNING = threshold(
    "loss_by_t.explodes_warning", -0.75,
    "chosen by hand in round 1 between a flat tail (exponent near 0, healthy flow |slope| < 0.4) and the "
    "integrability limit -1; tests/test_probes_loss.py::test_tail_exponent_is_recovered fires below -1, "
    "not above -0.5")
LOSS_T_EXPLODES_CRITICAL = threshold(
    "loss_by_t.explodes_critical", -1.5,
    "chosen by hand in round 1, past -1 where the expected loss over t is infinite; the flagship target "
    "(x1 - x0)/(1 - t) gives -2 (tests/test_probes_loss.py)")
LOSS_T_TAIL_RATIO = threshold(
    "loss_by_t.tail_ratio", 10.0,
    "chosen by hand in round 1: the outermost tail bin at least 10x the median over t; the flagship gives > 100 "
    "(tests/test_probes_loss.py)")
GRADIENTS_STALLED_RATIO = threshold(
    "gradients.stalled_ratio", 1e-4,
    "cited rule of thumb (CS231n notes, 'ratio of weights:updates': about 1e-3 per step), a tenth of it; Adam at "
    "lr 1e-6 gives 1e-6 to 1e-4 and fires, Adam at 1e-3 stays silent in tests/test_probes_gradients.py")
GRADIENTS_STALLED_MOVEMENT = threshold(
    "gradients.stalled_movement", 0.1,
    "chosen by hand in round 1: a whole run that moves the weights by less than 10% of their size; keeps short "
    "runs at a slow but sufficient rate silent")
GRADIENTS_HEALTHY_RATIO_LOW = threshold(
    "gradients.healthy_ratio_low", 1e-4,
    "the lower end of the cited healthy update/weight band 1e-4 to 1e-2 around 1e-3; shown in the figure and "
    "evidence, decides nothing")
GRADIENTS_HEALTHY_RATIO_HIGH = threshold(
    "gradients.healthy_ratio_high", 1e-2,
    "the upper end of the cited healthy update/weight band 1e-4 to 1e-2 around 1e-3; shown in the figure and "
    "evidence, decides nothing")
GRADIENTS_MIN_SAMPLES = threshold(
    "gradients.min_samples", 3,
    "chosen by hand in round 1: at least three readings (or measured updates) before a network is judged")
TIMING_BOTTLENECK_SHARE = threshold(
    "timing.bottleneck_share", 0.5,
    "chosen by hand in round 1: data phases take as long as everything else together; a slow data phase fires "
    "and a healthy loop stays silent in tests/test_probes_timing.py")
TIMING_MIN_STEPS = threshold(
    "timing.min_steps", 10,
    "chosen by hand in round 1: too few steps to judge a share of the step time")
SCHEDULE_LEFTOVER_WARNING = threshold(
    "schedule.leftover_warning", 0.1,
    "chosen by hand in round 1: data at a tenth of the noise's size at t = T; on the 1000-step DDPM schedule, "
    "data of RMS 1 (0.0064) stays silent and RMS 20 (0.13) warns in tests/test_probes_schedule.py")
SCHEDULE_LEFTOVER_CRITICAL = threshold(
    "schedule.leftover_critical", 0.3,
    "chosen by hand in round 1; the DDPM swiss-roll tutorial's 100-step schedule (0.76) and the 1000-step one "
    "with data of RMS 100 (0.64) are critical, RMS 20 (0.13) only warns in tests/test_probes_schedule.py")


# --- inputs, velocity field, sampler, data representation, memorization ---

VELOCITY_IGNORES_X = threshold(
    "velocity.ignores_x", 0.1,
    "chosen by hand in round 1 (9ab7c0e); separates healthy moons (sensitivity to x > 0.5 at t = 0) from a network "
    "that drops x (< 0.001) in tests/test_probes_velocity.py")
VELOCITY_IGNORES_T = threshold(
    "velocity.ignores_t", 0.1,
    "chosen by hand in round 1 (9ab7c0e); separates healthy moons (silent) from a network that drops t "
    "(< 0.001) in tests/test_probes_velocity.py")
VELOCITY_QUIVER_SHARE = threshold(
    "velocity.quiver_share", 0.5,
    "chosen by hand in round 3 (issue 24): quivers on a projection are drawn only when its two axes hold at least "
    "half the data's variance; the flagship's 4,096-D pictures put 2% and 2% there, where the arrows meant nothing")

INPUTS_TIME_SCALE_RATIO = threshold(
    "inputs.time_scale_ratio", 5.0,
    "derived: the largest sampling t over the largest training t (or its inverse); a sampler on the training scale "
    "stays near 1 (DDIM from step 980 of 1000: 0.98), step / T against the integer step differs by T (>= 50 in "
    "practice); the diffusers test (tests/test_integration_diffusers.py) separates 1000 from 1")
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

# --- issue 27: conditioning and classifier-free guidance ---
CONDITIONING_WARNING_SCORE = threshold(
    "conditioning.warning_score", 0.5,
    "chosen by hand in issue 27: (agreement - chance) / (data's agreement - chance) of the samples with the class "
    "asked for; measured on 2-D four-Gaussian loops: healthy conditional flow 1.00 (seeds 0-2) and cGAN 1.00, "
    "guided DDPMs 0.89 to 1.00; rows shuffled apart from their labels -0.03, D shown other rows' labels 0.01 "
    "(tests/test_conditioning.py, tests/test_guidance.py); half-way marks a model that follows its condition in part")
CONDITIONING_CRITICAL_SCORE = threshold(
    "conditioning.critical_score", 0.2,
    "chosen by hand in issue 27: at most a fifth of the data's margin over chance: the samples hardly depend on "
    "their condition (shuffled labels), or follow another one (wrong labels given to D): below 0")
CONDITIONING_MIN_SAMPLES = threshold(
    "conditioning.min_samples", 40,
    "derived: with 40 labelled samples the agreement rate's standard error is at most 0.08, well inside the "
    "margin between the two scores above for any number of classes with a data agreement >= chance + 0.2")
CONDITIONING_MIN_MARGIN = threshold(
    "conditioning.min_margin", 0.2,
    "chosen by hand in issue 27: the data's own agreement (each data row assigned from the others) must exceed "
    "chance by this much, else the classes overlap too much in the space measured to tell a sample's class")
CONDITIONING_LABELS_AT_CHANCE = threshold(
    "conditioning.labels_at_chance", 0.05,
    "chosen by hand in issue 27: the data's own agreement within 5 points of chance, over >= 50 rows per class "
    "(standard error <= 0.07 per class, far less over all), means the labels do not separate the rows at all "
    "(shuffled labels on the 2-D mixture of tests/test_conditioning.py); not yet measured on overlapping image "
    "classes, where a 16-axis PCA with 10 neighbours is expected to stay well above chance")
CONDITIONING_MIN_ROWS_PER_CLASS = threshold(
    "conditioning.min_rows_per_class", 50,
    "derived: the fewest data rows of a class before its labels are judged at chance; see labels_at_chance")
NULL_TRAIN_SHARE = threshold(
    "conditioning.null_train_share", 0.002,
    "derived: label dropout as used for classifier-free guidance (p = 0.05 to 0.2) puts the null label on 5% to "
    "20% of the training rows, 25 times this share or more; a loop that never drops labels puts it on none")
NULL_MIN_TRAIN_ROWS = threshold(
    "conditioning.null_min_train_rows", 500,
    "derived: with 500 recorded training rows a label dropout of p >= 0.05 leaves the null label on none of them "
    "with probability (1 - p)^500 < 1e-11")
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


# --- issue 25: sampling and calibration ---
SAMPLING_MIN_TIMES = threshold(
    "sampling_calls.min_times", 3,
    "derived: a state followed over fewer than three distinct times cannot show a sampler's walk (a guidance pair "
    "calls the network twice at one time on one state); benchmarks/RESULTS.md, calibration row "
    "sampler-state-frozen")
SAMPLING_RESTART_RESIDUAL = threshold(
    "sampling_calls.restart_residual", 1e-3,
    "derived: a sampler restarting from its start (`x = x0 + dt * v(x, t)`) makes each input less the first exactly "
    "a multiple of the previous output, up to float32 rounding (about 1e-7); 1e-3 leaves room for a sampler in half "
    "precision; benchmarks/RESULTS.md, calibration row sampler-state-frozen")
SAMPLING_RESTART_GROWTH = threshold(
    "sampling_calls.restart_growth", 1.5,
    "derived: that multiple stays one step (growth 1) for a sampler restarting from its start and grows about as the "
    "step number for one that adds its steps up (19 at 20 Euler steps); benchmarks/RESULTS.md, calibration row "
    "sampler-state-frozen")
T_UNTRAINED_MIN_TIMES = threshold(
    "sampling_calls.t_min_train_times", 200,
    "derived: with 200 training times spread evenly over 20 bins, a bin stays empty by chance with probability "
    "20·0.95^200 < 1e-3; fewer training times are not judged (benchmarks/RESULTS.md, calibration row "
    "t-range-untrained)")
T_UNTRAINED_WARNING = threshold(
    "sampling_calls.t_untrained_warning", 0.15,
    "chosen by hand: more than two of 20 bins of a uniform sampler's calls at times training never drew; a logit-"
    "normal draw of t (SD3's) in a short run can leave the one outer bin at each end empty (0.10), so two are not "
    "judged; healthy loops give 0 (benchmarks/RESULTS.md, calibration row t-range-untrained)")
T_UNTRAINED_CRITICAL = threshold(
    "sampling_calls.t_untrained_critical", 0.25,
    "chosen by hand: a quarter of the sampler's calls at untrained times; training on the lowest quarter of the "
    "steps leaves 0.75 (benchmarks/RESULTS.md, calibration row t-range-untrained)")

# The row of benchmarks/RESULTS.md's calibration table (bench_calibration, one row per finding code) that measures
# each threshold, by the threshold's "<probe>." prefix: its false alarms on healthy loops, its detections on broken
# ones. A threshold whose prefix is missing here fails tests/test_f25b_calibration.py; () marks thresholds of no
# finding.
CALIBRATION_ROWS: dict[str, tuple[str, ...]] = {
    "loss.": ("loss-nonfinite", "loss-diverging", "loss-unbounded-below"),
    "loss_by_t.": ("loss-t-imbalance", "target-explodes"),
    "gradients.": ("no-gradient-reaches", "params-stalled", "gradients-not-seen", "grad-accumulating"),
    "timing.": ("data-bottleneck",),
    "schedule.": ("schedule-not-reaching-noise",),
    "velocity.": ("field-ignores-x", "field-ignores-t"),
    "inputs.": ("train-sample-input-mismatch",),
    "sampler.": ("sampler-state-frozen",),
    "data_repr.": ("rendered-point-cloud", "data-near-duplicates", "data-binary-pixels", "data-scale-mismatch",
                   "source-not-noise", "source-sampler-mismatch", "source-chosen"),
    "mode-collapse.": ("mode-collapse",),
    "gan-balance.": ("gan-d-dominates", "gan-oscillation", "gan-d-output-squashed", "gan-g-objective-inverted"),
    "vae-health.": ("posterior-collapse",),
    "samples_vs_data.": ("samples-unlike-data",),
    "memorization.": ("memorization",),
    "sampling_calls.": ("sampler-state-frozen", "t-range-untrained"),
    "autoregressive.": ("causal-leak", "train-sample-input-mismatch", "ar-samples-identical"),
    "distributed.": ("ddp-same-noise-across-ranks", "distributed-sampler-epoch-unset"),
    "ema.": ("ema-lagging",),
    "optimizer.": ("lr-decayed-to-zero", "weight-decay-dominates"),
    "regression.": ("loss-at-baseline",),
    "forward_process.": ("forward-process-off-schedule",),
    "diffusion_sampler.": ("sampler-parameterization-mismatch", "sampler-schedule-misindexed"),
    "vae_output.": ("vae-decoder-output-squashed", "bce-target-out-of-range"),
    "conditioning.": ("conditioning-ignored", "null-label-untrained"),
    "observed.": ("samples-nonfinite",),
    "flattened.": (),  # the flattened recipe's story, not a finding: no calibration row
}


def calibration_rows(name: str) -> tuple[str, ...] | None:
    """The calibration rows (finding codes) that measure threshold `name`; None where its prefix is not listed."""
    return next((rows for prefix, rows in CALIBRATION_ROWS.items() if name.startswith(prefix)), None)


# --- issue 25: causes ---

GRAD_ACCUM_MIN_WINDOWS = threshold(
    "gradients.accum_min_windows", 3,
    "chosen by hand in issue 25: the check is exact (a reset leaves None or zeros in .grad), so three windows in a "
    "row without one, the last ones of the run, rule out a one-off; tests/test_f25a_causes.py fires on a loop "
    "without zero_grad and stays silent on zero_grad before or after the step and on micro-batch accumulation")
GRAD_ACCUM_SHARE = threshold(
    "gradients.accum_share", 0.5,
    "chosen by hand in issue 25: at least half of the windows checked saw no reset, so a loop that stopped "
    "resetting late in the run is named only once that is most of it")
GRADIENTS_NEVER_STEPPED_STEPS = threshold(
    "gradients.never_stepped_steps", 20,
    "chosen by hand in issue 25: a watched optimizer that made no step in this many Monitor.step calls (a D "
    "updated every k <= 5 steps steps within it) is not stepped at all; tests/test_f25a_causes.py")
LOSS_UNBOUNDED_FALL = threshold(
    "loss.unbounded_fall", 10.0,
    "chosen by hand in issue 25: the last window lies below 0 and below the first by 10 times the first window's "
    "scale, with the second half of the run falling at least as far as the first (a fall that does not slow "
    "down); a VAE whose KL enters with the wrong sign falls 49x in 200 steps and keeps speeding up, a healthy "
    "loss slows down (tests/test_f25a_causes.py)")
LOSS_UNBOUNDED_TAU = threshold(
    "loss.unbounded_tau", -0.7,
    "chosen by hand in issue 25: Kendall's tau of the ten window medians, a nearly monotone fall (the mirror of "
    "loss.rise_tau, stricter because a fall is what training is meant to do)")
LOSS_UNBOUNDED_DEPTH = threshold(
    "loss.unbounded_depth", 1000.0,
    "derived, then measured: the last window below 0 and this many first-window scales below the first, however "
    "it got there. A loss ≥ 0 falls at most 1 scale; a Gaussian likelihood whose σ reaches float32's smallest "
    "normal number falls about 87 nats per dimension from about 1.4 at σ = 1, about 60 scales. The calibration's "
    "KL-sign VAE falls 1.1e19-2.3e19 scales, below -1e20 within 60 steps, then swings there: neither monotone (tau "
    "-0.51, -0.64) nor speeding up, so loss.unbounded_tau missed it; the healthy runs stay <= 1 (calibration row "
    "loss-unbounded-below)")
GAN_SQUASHED_STEPS = threshold(
    "gan-balance.squashed_steps", 0.9,
    "chosen by hand in issue 25: the share of reported steps whose every D output lies in [0, 1] and whose "
    "loss_d equals BCE-with-logits of those outputs; a D ending in a Sigmoid under BCEWithLogitsLoss gives 1.0, "
    "a logit D gives outputs outside [0, 1] within its first steps (tests/test_f25a_causes.py)")
GAN_SQUASHED_MATCH = threshold(
    "gan-balance.squashed_match", 0.02,
    "derived: relative tolerance for loss_d to equal a BCE of the reported outputs, recomputed from the same "
    "outputs; float rounding is far below it, the two readings (outputs as logits or as probabilities) differ by "
    "far more than it whenever an output lies in (0, 1)")
GAN_SQUASHED_MIN_STEPS = threshold(
    "gan-balance.squashed_min_steps", 20,
    "chosen by hand in issue 25, as gan-balance.min_stretch_steps: fewer reported steps are not judged")

# --- issue 21: multi-process training ---

DISTRIBUTED_MIN_COMPARED = threshold(
    "distributed.min_compared", 8,
    "chosen by hand in issue 21: two ranks are compared on at least this many tensors of a stream (times or noise) "
    "before their draws are called the same; a chance match of one continuous draw is below 1e-12")
DISTRIBUTED_SAME_SHARE = threshold(
    "distributed.same_share", 0.5,
    "chosen by hand in issue 21: at least half of the compared draws equal bit for bit; identical seeds give 1.0 "
    "and ranks seeded apart give 0.0 (tests/test_distributed.py), so any value between separates them")
DISTRIBUTED_REPEAT_SHARE = threshold(
    "distributed.repeat_share", 0.9,
    "chosen by hand in issue 21: of the data batches that could repeat one period back, this share did; a "
    "DistributedSampler without set_epoch repeats every batch (1.0), a reshuffled or freshly drawn one none")
DISTRIBUTED_MIN_REPEATS = threshold(
    "distributed.min_repeats", 4,
    "chosen by hand in issue 21: at least this many batches came back in the same place of a later epoch, and at "
    "least one whole epoch of them, before the order is called fixed")
# --- issue 27: EMA copies, the optimizer's schedule and weight decay, the generator's objective ---

EMA_MIN_STEPS = threshold(
    "ema.min_steps", 200,
    "chosen by hand in issue 27: an EMA copy is judged once 200 steps passed since it was watched, so that a decay "
    "of 0.99 (a horizon of 100 steps) has caught up with the network it follows (tests/test_ema.py)")
EMA_MIN_MODEL_MOVE = threshold(
    "ema.min_model_move", 0.01,
    "chosen by hand in issue 27: the followed network must have moved at least 1% of its starting weights' norm, "
    "or the two distances compare nothing but rounding")
EMA_LAG_WARNING = threshold(
    "ema.lag_warning", 0.5,
    "chosen by hand in issue 27: the copy moved less than half as far as the network; decay 0.9999 over 600 steps "
    "moves it about 0.06 of the way, decay 0.99 about 0.9 to 1 over three seeds (tests/test_ema.py)")
EMA_LAG_CRITICAL = threshold(
    "ema.lag_critical", 0.1,
    "chosen by hand in issue 27: under a tenth of the network's distance the copy is close to its initial "
    "weights; a copy whose update is never called moves 0")
LR_ZERO_FRACTION = threshold(
    "optimizer.lr_zero_fraction", 1e-3,
    "chosen by hand in issue 27: a learning rate under a thousandth of its peak moves the weights about as "
    "much as none; a cosine schedule to the end of the run crosses it in its last 2% of steps, a step schedule "
    "dividing by 10 three times ends at exactly 1e-3 and is not counted (tests/test_optimizer_causes.py)")
LR_ZERO_SHARE = threshold(
    "optimizer.lr_zero_share", 0.25,
    "chosen by hand in issue 27: a quarter of the run spent at a learning rate below optimizer.lr_zero_fraction "
    "of its peak is a quarter of the compute spent without training; a schedule stepped per batch where it was "
    "meant per epoch spends most of the run there (tests/test_optimizer_causes.py)")
LR_ZERO_CRITICAL = threshold(
    "optimizer.lr_zero_critical", 0.5,
    "chosen by hand in issue 27: half of the run or more spent with a learning rate of about 0")
LR_MIN_READINGS = threshold(
    "optimizer.lr_min_readings", 50,
    "chosen by hand in issue 27, as loss.min_points: fewer learning-rate readings are not judged")
WD_SHRINK = threshold(
    "optimizer.wd_shrink", 0.3,
    "chosen by hand in issue 27: the watched weights' norm fell by 30% or more from its peak; AdamW with weight "
    "decay 0.01 on the healthy test loops moves it by a few percent, a decay of 1 to 5 shrinks it by over half "
    "(tests/test_optimizer_causes.py)")
WD_LOSS_FLAT = threshold(
    "optimizer.wd_loss_flat", 0.1,
    "chosen by hand in issue 27: over the shrink the loss improved by less than 10% of its value at the weights' "
    "peak (or got worse); a loop that trains lowers a 2-D noise-prediction loss by 30% or more over the same "
    "stretch (tests/test_optimizer_causes.py)")
WD_MIN_STEPS = threshold(
    "optimizer.wd_min_steps", 100,
    "chosen by hand in issue 27: weights read over at least 100 steps after their peak, so that a shrink is a "
    "trend and not the first steps' adjustment")
GAN_INVERTED_CORRELATION = threshold(
    "gan-balance.inverted_correlation", 0.5,
    "derived: every generator objective (non-saturating, minimax, hinge, Wasserstein) falls as D rates the fakes "
    "more real, so the step-to-step changes of G's loss and D(fake) have a rank correlation near -1; G minimising "
    "the wrong objective turns it positive (tests/test_optimizer_causes.py: +0.74 and above against -0.9 and "
    "below)")
GAN_INVERTED_MIN_STEPS = threshold(
    "gan-balance.inverted_min_steps", 50,
    "chosen by hand in issue 27, as loss.min_points: fewer steps reporting loss_g and D(fake) are not judged")
INPUTS_REVERSED_SHARE = threshold(
    "inputs.reversed_share", 0.25,
    "chosen by hand in issue 27: the sampler's inputs at one end of t lie, against training's inputs at the other "
    "end, under a quarter of their distance from training's at their own end; a flow sampler integrating from the "
    "data end starts from the source where training holds the data, crossed ratio near 0 against a direct one "
    "near 1 (tests/test_ema.py)")
# --- issue 27: causes named, not symptoms ---

BASELINE_MIN_STEPS = threshold(
    "regression.baseline_min_steps", 100,
    "chosen by hand in issue 27: a network needs some steps to leave its initial outputs; the check reads the "
    "training calls of the last quarter of at least this many steps (tests/test_cause_codes.py)")
BASELINE_SPREAD = threshold(
    "regression.baseline_spread", 0.05,
    "chosen by hand in issue 27: the output's variance across rows, per element, over the loss per element; a "
    "network whose target does not depend on its input learns the target's mean (about 1e-4 on the noise-"
    "prediction loop of tests/test_cause_codes.py), a trained noise predictor explains part of its target (> 1)")
BASELINE_NOISE_BAND = threshold(
    "regression.noise_band", 0.15,
    "derived: a noise-prediction loss per element within this of 1, the variance of N(0, I) noise, is the loss of "
    "predicting its mean 0; a trained 2-D DDPM reaches 0.3-0.6 (tests/test_cause_codes.py)")
FORWARD_MIN_ROWS = threshold(
    "forward_process.min_rows", 64,
    "chosen by hand in issue 27: training rows per bin of ᾱ_t before its mean square is compared (relative "
    "standard error about 0.1 for 2-D rows, less for wider ones)")
FORWARD_OFF = threshold(
    "forward_process.off", 0.2,
    "chosen by hand in issue 27: the median over bins of |log(measured / expected)| mean square of x_t; a missing "
    "square root (x_t = ᾱ·x0 + (1 - ᾱ)·ε) gives 0.3-0.7 on a schedule down to ᾱ_T < 0.1, the textbook forward "
    "process below 0.05 (tests/test_cause_codes.py)")
SAMPLER_FIT = threshold(
    "diffusion_sampler.fit", 0.1,
    "chosen by hand in issue 27: the relative error of a sampling step against the step its reading of the output "
    "predicts; DDPM's added noise at the last steps and float rounding stay below 0.05, the other reading misses "
    "by more than 0.3 on the loops of tests/test_cause_codes.py")
SAMPLER_OTHER = threshold(
    "diffusion_sampler.other", 3.0,
    "chosen by hand in issue 27: the other reading must miss the step at least this many times worse before the "
    "step counts as read one way (a network whose output is close to its input fits both)")
SAMPLER_TRAINED_NEAR = threshold(
    "diffusion_sampler.trained_near", 0.3,
    "chosen by hand in issue 27: a network returns about its input (relative distance below this) where its target "
    "is nearly its input: an x0 predictor at ᾱ_t >= 0.98 (0.09 on tests/test_cause_codes.py), a noise predictor at "
    "ᾱ_t <= 0.02 (about 0.15)")
SAMPLER_TRAINED_GAP = threshold(
    "diffusion_sampler.trained_gap", 0.25,
    "chosen by hand in issue 27: at the other end of the schedule the same network must lie at least this much "
    "further from its input (a noise predictor at ᾱ_t >= 0.98: 0.45-0.6 after 400-600 steps against 0.12 at the "
    "noisy end; an x0 predictor at ᾱ_t <= 0.02: about 1 against 0.09), else the parameterization is not told (an "
    "untrained network, a v predictor)")
SAMPLER_LAST_STEP = threshold(
    "diffusion_sampler.last_step", 0.3,
    "chosen by hand in issue 27: a last step whose output, fitted as a·x0_hat + b·output, has |a - 1| or |b| above "
    "this did not return the x0 estimate; a wrapped ᾱ index (ᾱ[-1] at t = 0) gives b near 1")
VAE_SQUASH_MIN_VALUES = threshold(
    "vae_output.min_values", 512,
    "chosen by hand in issue 27: sample values (the decoder's outputs on the prior) seen before their range is "
    "judged; one 8x8 sample batch of 8 rows")
VAE_SQUASH_DATA_SHARE = threshold(
    "vae_output.data_share", 0.1,
    "chosen by hand in issue 27: the share of data values outside [sigmoid(0), sigmoid(1)] that a decoder confined "
    "there cannot reproduce; binary images put > 0.8 of their pixels there")
BCE_OUT_OF_RANGE_SHARE = threshold(
    "vae_output.target_share", 0.01,
    "chosen by hand in issue 27: the share of data values outside [0, 1] (by more than 1e-3) that makes them "
    "invalid Bernoulli targets; data scaled to [-1, 1] puts half or more there")
# --- issue 27: values the run observes ---

OBSERVED_SAMPLES_CRITICAL_SHARE = threshold(
    "observed.samples_critical_share", 0.1,
    "chosen by hand in issue 27: a tenth of the samples NaN or infinite is a sampler or model that has broken, not "
    "a rare overflow; any non-finite sample at all is a warning (a healthy loop gives none); the NaN-GAN loop of "
    "tests/test_robust_values.py gives 1.0")

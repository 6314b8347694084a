"""Group c of the measurements / rules / figures split (issue 22): GAN balance, modes, VAE health, samples against
data, memorization. Each rule fires and stays silent on a hand-made summary; each quantity against a brute-force or
hand-computed twin; user-written loops show that `findings` can run at any time without changing the end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import gendiag
from gendiag.metrics import ClassCoverage, Coverage, Memorization, ModeMetrics, class_coverage, mode_metrics
from gendiag.metrics.samples_vs_data import SampleGap
from gendiag.quantities.gan_balance import BalanceLog, discriminator_view, longest_run, swing_growth
from gendiag.quantities.memorization import Copying, CopyWatch
from gendiag.quantities.modes import CoverageTimeline, Observation, kl_noise, miss_chance
from gendiag.quantities.samples_vs_data import SamplesAgainstData, spread
from gendiag.quantities.vae_health import LatentTimeline, activity
from gendiag.probes.base import StepRecord
from gendiag.rules.codes import CODES
from gendiag.rules.gan_balance import d_dominates, oscillation
from gendiag.rules.memorization import memorization_finding
from gendiag.rules.modes import mode_collapse
from gendiag.rules.samples_vs_data import samples_unlike_data
from gendiag.rules.thresholds import THRESHOLDS
from gendiag.rules.vae_health import posterior_collapse

GROUP_C = ("gan-d-dominates", "gan-oscillation", "mode-collapse", "posterior-collapse", "samples-unlike-data",
           "memorization")


# -- the code map ---------------------------------------------------------------------------------------------

def test_every_group_c_code_maps_to_importable_quantity_rule_and_figure() -> None:
    import importlib

    by_code = {entry.code: entry for entry in CODES}
    for code in GROUP_C:
        entry = by_code[code]
        for target in (entry.quantity, entry.rule, entry.figure):
            module, name = target.split(":")
            assert callable(getattr(importlib.import_module(module), name)), target


def test_group_c_thresholds_have_a_basis() -> None:
    names = [n for n in THRESHOLDS if n.split(".")[0] in ("gan-balance", "mode-collapse", "vae-health",
                                                          "samples_vs_data", "memorization")]
    assert len(names) >= 25 and all(len(THRESHOLDS[n].basis) > 20 for n in names)


# -- modes ------------------------------------------------------------------------------------------------------

def test_coverage_by_hand_and_both_units_share_it() -> None:
    coverage = Coverage(np.array([3, 0, 1, 0]))
    assert coverage.covered.tolist() == [True, False, True, False] and coverage.n_covered == 2
    assert coverage.missing == [1, 3] and coverage.largest_share == 0.75
    assert coverage.kl_to_uniform == pytest.approx(0.75 * math.log(4 * 0.75) + 0.25 * math.log(4 * 0.25))
    classes = class_coverage(np.array([0, 0, 0, 2]), n_classes=4)
    assert isinstance(classes, ClassCoverage) and isinstance(classes, Coverage)
    assert classes.classes_found == classes.n_covered == 2 and classes.missing == [1, 3]
    modes = mode_metrics(np.array([[0.0, 0.0]] * 3 + [[2.0, 0.0]]), np.array([[0, 0], [1, 0], [2, 0], [3, 0]]), 0.1)
    assert isinstance(modes, ModeMetrics) and modes.counts.tolist() == [3, 0, 1, 0]
    assert modes.captured.tolist() == modes.covered.tolist() and modes.dropped_modes == modes.missing == [1, 3]
    assert modes.reverse_kl == modes.kl_to_uniform == coverage.kl_to_uniform and modes.n_modes == 4


def timeline(unit: str, counts_by_step: dict[int, list[int]], n_samples: int = 1000) -> CoverageTimeline:
    line = CoverageTimeline(unit, len(next(iter(counts_by_step.values()))))
    for step, counts in counts_by_step.items():
        line.add(Observation(step, n_samples, Coverage(np.array(counts)), 1.0 if unit == "mode" else None))
    return line


def test_missing_since_against_a_brute_force_scan() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        covered = rng.random((6, 4)) < 0.5
        line = timeline("mode", {10 * (i + 1): row.astype(int).tolist() for i, row in enumerate(covered)})
        for k in range(4):
            missing_steps = [10 * (i + 1) for i in range(6) if not covered[i, k]]
            expected = 60
            for i in reversed(range(6)):
                if covered[i, k]:
                    break
                expected = 10 * (i + 1)
            assert line.missing_since(k) == expected
            assert line.never_covered(k) == (len(missing_steps) == 6)


def test_miss_chance_and_kl_noise_by_hand() -> None:
    assert miss_chance(2, 3) == pytest.approx(2 * 0.5 ** 3) and miss_chance(1, 5) == 0.0
    assert kl_noise(2, 100, 0.99) == pytest.approx(6.634897 / 200, rel=1e-5)  # chi-squared(1) 99% quantile


def test_mode_collapse_fires_on_dropped_modes_and_is_silent_when_even() -> None:
    dropped = mode_collapse(timeline("mode", {100: [125] * 8, 200: [250] * 4 + [0] * 4}), "gan", "f.png")
    assert dropped.severity == "critical" and dropped.title.startswith("Mode collapse: 4 of 8 modes covered")
    assert dropped.evidence["dropped_modes"] == [4, 5, 6, 7] and dropped.evidence["missing_since_step"]["4"] == 200
    assert mode_collapse(timeline("mode", {100: [125] * 8}), "gan", "f.png") is None
    assert mode_collapse(CoverageTimeline("class", 3), "gan", None) is None


def test_every_mode_covered_is_never_titled_a_collapse() -> None:
    """Issue 24: "Mode collapse: 8 of 8 modes covered at step 4000". An imbalance with every mode covered fires,
    and says so."""
    uneven = mode_collapse(timeline("mode", {4000: [700] + [40] * 7}), "gan", "f.png")
    assert uneven is not None and uneven.severity == "warning"
    assert "collapse" not in uneven.title.lower() and uneven.title.startswith("Uneven modes: all 8 modes covered")
    classes = mode_collapse(timeline("class", {5: [910] + [10] * 9}), "gan", None)
    assert "collapse" not in classes.title.lower() and "all 10 classes covered" in classes.title
    assert classes.evidence["dropped_classes"] == [] and classes.evidence["largest_share"] == 0.91


# -- GAN balance ------------------------------------------------------------------------------------------------

def test_longest_run_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        mask = rng.random(int(rng.integers(1, 30))) < 0.6
        best, best_start = 0, None
        for start in range(len(mask)):
            length = 0
            while start + length < len(mask) and mask[start + length]:
                length += 1
            if length > best:
                best, best_start = length, start
        first, last = longest_run(mask)
        assert (first, last) == ((best_start, best_start + best - 1) if best else (None, -1))


def test_discriminator_view_by_hand() -> None:
    view = discriminator_view(torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0]), "logit")
    assert view["d_real"] == pytest.approx((0.5 + 1 / (1 + math.exp(-2))) / 2)
    assert view["d_accuracy"] == 0.5  # real 0.5 is not > 0.5; real 0.88 right; fake 0.27 right; fake 0.73 wrong
    critic = discriminator_view(torch.tensor([3.0]), torch.tensor([-1.0]), "critic")
    assert critic["d_real"] == 3.0 and math.isnan(critic["d_accuracy"])


def test_swing_of_a_steady_sine_is_its_smoothed_std() -> None:
    """A sine of amplitude 1, period 50: std 1/sqrt(2) per segment, times the gain of the 9-step moving average
    (1,800 values after the burn-in, window 1,800 // 200), sin(9 pi / 50) / (9 sin(pi / 50))."""
    steps = np.arange(2000)
    swing = swing_growth(np.sin(2 * np.pi * steps / 50), min_steps=100)
    expected = math.sin(9 * math.pi / 50) / (9 * math.sin(math.pi / 50)) / math.sqrt(2)
    assert swing.amplitudes == pytest.approx([expected] * 5, rel=0.02)
    assert swing.growth == pytest.approx(1, abs=0.03)
    assert swing_growth(np.zeros(99), min_steps=100) is None


def balance_frame(d_fake: float, accuracy: float, loss_amplitude: np.ndarray | float = 0.0) -> pd.DataFrame:
    n = 1000
    steps = np.arange(1, n + 1)
    swing = loss_amplitude * np.sin(2 * np.pi * steps / 40)
    return pd.DataFrame({"step": steps.astype(float), "loss_d": 0.7 + swing, "loss_g": 0.7 - swing,
                         "grad_norm_d": 1.0, "grad_norm_g": 1.0, "d_real": 0.9, "d_fake": d_fake,
                         "d_accuracy": accuracy})


def test_d_dominates_fires_on_a_saturated_discriminator_and_is_silent_on_a_balanced_one() -> None:
    won = d_dominates(balance_frame(0.02, 1.0), "prob", "figures/gan_balance.png")
    assert won.code == "gan-d-dominates" and won.severity == "critical" and won.evidence["share_of_run"] == 1.0
    assert d_dominates(balance_frame(0.45, 0.55), "prob", None) is None
    assert d_dominates(balance_frame(0.02, 1.0), "critic", None) is None


def test_oscillation_fires_on_a_growing_swing_and_is_silent_on_a_steady_one() -> None:
    growing = oscillation(balance_frame(0.4, 0.6, np.linspace(0.05, 1.0, 1000)), None)
    assert growing.code == "gan-oscillation" and growing.evidence["loss_d_growth"] > 2
    assert oscillation(balance_frame(0.4, 0.6, 0.5), None) is None


def test_balance_log_keeps_rows_and_caches_its_table() -> None:
    log = BalanceLog()
    assert log.add(StepRecord(step=1, loss=None)) is None
    log.add(StepRecord(step=2, loss=None, scalars={"loss_d": 0.5, "d_real": 0.9, "d_fake": 0.1}))
    table = log.table()
    assert table is log.table() and table["d_accuracy"].tolist() == [1.0]
    log.add(StepRecord(step=3, loss=None, scalars={"loss_g": 1.0}))
    assert len(log.table()) == 2 and math.isnan(log.table()["d_fake"].iloc[1])


# -- VAE health -------------------------------------------------------------------------------------------------

def test_latent_timeline_pools_one_step_as_activity_of_the_concatenation() -> None:
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(10, 3, generator=gen), torch.randn(10, 3, generator=gen)
    line = LatentTimeline()
    line.add(mu[:4], logvar[:4], 7)
    entry = line.add(mu[4:], logvar[4:], 7)
    variance, kl = activity(mu, logvar)
    assert len(line) == 1 and entry.samples == 10
    np.testing.assert_allclose(entry.variance, variance, rtol=1e-6)
    np.testing.assert_allclose(entry.kl, kl, rtol=1e-6)
    assert entry.active(0.01) == int((variance > 0.01).sum())


def test_posterior_collapse_fires_on_a_prior_posterior_and_is_silent_on_a_used_code() -> None:
    gen = torch.Generator().manual_seed(1)
    collapsed, used = LatentTimeline(), LatentTimeline()
    collapsed.add(0.01 * torch.randn(64, 8, generator=gen), torch.zeros(64, 8), 100)
    used.add(torch.randn(64, 8, generator=gen), torch.full((64, 8), -2.0), 100)
    finding = posterior_collapse(collapsed, "figures/vae_latents.png")
    assert finding.severity == "critical" and finding.evidence["active_units"] == 0
    assert posterior_collapse(used, None) is None and posterior_collapse(LatentTimeline(), None) is None


# -- samples against data ---------------------------------------------------------------------------------------

def gap(**changes: float) -> SampleGap:
    healthy = dict(n_samples=500, n_data=2048, n_compared=500, repeats=3, dimension=2, space="data space",
                   explained_variance=1.0, std_ratio=1.0, std_ratio_floor=1.05, rms_ratio=1.0, dim_std_ratio_low=0.95,
                   dim_std_ratio_high=1.05, mean_offset=0.05, mean_offset_floor=0.05, data_spread=1.0, w2=0.1,
                   w2_floor=0.05, w2_gaussian=0.3, coverage=0.9, coverage_floor=0.95, energy=0.01,
                   energy_floor=0.002)
    return SampleGap(**{**healthy, **changes})


def test_guided_samples_are_judged_only_for_being_too_wide_or_misplaced() -> None:
    guided = "the guidance fact (scale 5)"
    sharp = gap(std_ratio=0.5, w2=0.9, coverage=0.3)  # sharper and less diverse than the data, as guidance makes them
    assert samples_unlike_data(sharp, 10, 5000, True, True, "diffusion", None).severity == "critical"
    assert samples_unlike_data(sharp, 10, 5000, True, True, "diffusion", None, guided=guided) is None
    misplaced = samples_unlike_data(gap(mean_offset=3.0), 10, 5000, True, True, "diffusion", None, guided=guided)
    assert misplaced.severity == "critical" and misplaced.evidence["guided"] == guided
    assert "Sampling is guided" in misplaced.message


def test_samples_unlike_data_fires_on_wide_samples_and_is_silent_on_like_ones() -> None:
    wide = samples_unlike_data(gap(std_ratio=4.0), 10, 5000, True, True, "flow", None)
    assert wide.severity == "critical" and "std 4x the data's" in wide.title
    assert samples_unlike_data(gap(), 10, 5000, True, True, "flow", None) is None
    assert samples_unlike_data(None, 10, 5000, True, True, "flow", None) is None
    narrow = gap(std_ratio=0.4)
    assert samples_unlike_data(narrow, 10, 5000, True, True, "gan", None).severity == "warning"
    assert samples_unlike_data(narrow, 10, 5000, True, False, "vae", None) is None  # a VAE's decoder means
    far = gap(w2=0.5, w2_floor=0.05, data_spread=0.7)  # W2 10x its floor, 0.71 spreads: left to mode-collapse
    assert samples_unlike_data(far, 10, 5000, True, True, "gan", None).severity == "critical"
    assert samples_unlike_data(far, 10, 5000, False, False, "gan", None) is None


def test_spread_and_the_cached_gap_by_hand() -> None:
    rows = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    assert spread(rows) == pytest.approx(math.sqrt(2))
    against = SamplesAgainstData()
    gen = torch.Generator().manual_seed(2)
    against.add_data(torch.randn(200, 2, generator=gen))
    assert against.why_not() == "no samples were observed" and against.gap() is None
    scale = against.add_samples(3 * torch.randn(100, 2, generator=gen), step=5)
    assert scale["std_ratio"] == pytest.approx(3, rel=0.2)
    first = against.gap()
    assert first is against.gap() and first.std_ratio == pytest.approx(scale["std_ratio"], rel=1e-6)
    against.add_data(torch.randn(10, 2, generator=gen))
    assert against.gap() is not first and against.gap().n_samples == 100


def test_a_gap_asked_for_while_the_reservoir_fills_changes_nothing_kept() -> None:
    def fed(peek: bool) -> SamplesAgainstData:
        gen = torch.Generator().manual_seed(6)
        against = SamplesAgainstData()
        for step in range(40):  # 64 rows a step: the reservoir (2,048 rows) fills at step 32
            against.add_data(torch.randn(64, 2, generator=gen))
            if step == 5:
                against.add_samples(torch.randn(50, 2, generator=gen), step)
            if peek and step in (10, 20):
                against.gap()
        return against

    quiet, peeked = fed(False), fed(True)
    assert torch.equal(quiet.data.rows, peeked.data.rows)
    assert quiet.gap() == peeked.gap()


# -- memorization -----------------------------------------------------------------------------------------------

def copying(generated_ratio: np.ndarray) -> Copying:
    rng = np.random.default_rng(3)
    heldout_ratio = rng.uniform(0.5, 2.0, 400)
    result = Memorization(generated_distance=generated_ratio, nearest_train=np.arange(len(generated_ratio)),
                          generated_ratio=generated_ratio, heldout_distance=heldout_ratio,
                          heldout_ratio=heldout_ratio, copy_quantile=0.01,
                          copy_threshold=float(np.quantile(heldout_ratio, 0.01)))
    return Copying(result, {"threshold": 0.1, "n": 400, "generated_pairs": 0, "heldout_pairs": 0,
                            "support_estimate": math.inf}, np.zeros((400, 2)), np.zeros((400, 2)), 400)


def test_memorization_fires_on_copies_and_is_silent_on_fresh_samples() -> None:
    rng = np.random.default_rng(4)
    copies = memorization_finding(copying(rng.uniform(0.0, 0.01, 400)), 9, 6400, "gan", None)
    assert copies.severity == "critical" and copies.evidence["copy_share"] == 1.0
    assert copies.evidence["mann_whitney_z"] < -3 and len(copies.evidence["closest_generated_to_train"]) == 6
    assert memorization_finding(copying(rng.uniform(0.5, 2.0, 400)), 9, 6400, "gan", None) is None
    assert memorization_finding(None, None, 0, "gan", None) is None


def test_copy_watch_compares_without_touching_its_reservoir() -> None:
    gen = torch.Generator().manual_seed(5)
    watch = CopyWatch(torch.randn(3000, 2, generator=gen))
    for _ in range(20):
        watch.add_data(torch.randn(64, 2, generator=gen))
    watch.add_samples(torch.randn(3000, 2, generator=gen), step=3)
    state = watch.train.generator.get_state()
    first = watch.copying(0.01)
    assert torch.equal(watch.train.generator.get_state(), state) and first is watch.copying(0.01)
    assert len(first.generated) == 2500 and first.n_heldout == 2500 and watch.train.seen == 1280
    watch._copying = None  # a fresh comparison draws the same subsets
    again = watch.copying(0.01)
    np.testing.assert_array_equal(again.generated, first.generated)


# -- user-written loops: findings at any time, the same end -----------------------------------------------------

ANGLES = torch.arange(8) * 2 * math.pi / 8
RING = 2.0 * torch.stack([ANGLES.cos(), ANGLES.sin()], 1)


def ring_batch(n: int, gen: torch.Generator, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The user's data helper: 8 Gaussians on a circle of radius 2, std 0.05."""
    weights = torch.ones(8) if weights is None else weights
    which = torch.multinomial(weights, n, replacement=True, generator=gen)
    return RING[which] + 0.05 * torch.randn(n, 2, generator=gen)


def end_findings(run_dir: Path) -> list[dict]:
    findings = json.loads((run_dir / "findings.json").read_text())["findings"]
    return sorted(findings, key=lambda f: f["code"])


def user_gan(run_dir: Path, peek: bool) -> list[dict]:
    """A user's GAN on the ring: their order (G step first, then D), logits; when `peek`, every probe's findings
    are asked for every 30 steps, as a live view would."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    G = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
    opt_G, opt_D = torch.optim.Adam(G.parameters(), 2e-3), torch.optim.Adam(D.parameters(), 2e-3)
    bce = nn.BCEWithLogitsLoss()
    seen = []
    with gendiag.Monitor(run_dir, task="gan", probes=["gan-balance", "mode-collapse", "samples_vs_data"],
                         modes=RING, mode_std=0.05, strict=True, check_every=None) as mon:  # only the test asks
        for it in range(90):
            z = torch.randn(64, 2, generator=gen)
            loss_G = bce(D(G(z)), torch.ones(64, 1))
            opt_G.zero_grad()
            loss_G.backward()
            opt_G.step()
            x = ring_batch(64, gen)
            mon.observe_data(x)
            d_real, d_fake = D(x), D(G(z).detach())
            loss_D = bce(d_real, torch.ones(64, 1)) + bce(d_fake, torch.zeros(64, 1))
            opt_D.zero_grad()
            loss_D.backward()
            opt_D.step()
            mon.step(it, loss_d=loss_D.item(), loss_g=loss_G.item(), d_real=d_real.detach().squeeze(1),
                     d_fake=d_fake.detach().squeeze(1), d_output="logit")
            if it % 30 == 29:
                with torch.no_grad(), mon.sampling():
                    mon.observe_samples(G(torch.randn(300, 2, generator=gen)))
            if peek and it % 30 == 0:
                seen.append([f.code for p in mon.probes for f in p.findings(mon.ctx)])
    if peek:
        assert len(seen) == 3
    return end_findings(run_dir)


@pytest.mark.slow
def test_findings_any_time_leave_a_user_gan_run_unchanged(tmp_path: Path) -> None:
    quiet, peeked = user_gan(tmp_path / "quiet", peek=False), user_gan(tmp_path / "peeked", peek=True)
    assert peeked == quiet
    assert {f["code"] for f in quiet} <= set(GROUP_C)


def user_vae(run_dir: Path, peek: bool, beta: float) -> list[dict]:
    """A user's VAE with their own reparameterisation, a held-out batch encoded every 25 steps."""
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(1)
    enc, dec = nn.Linear(2, 2 * 4), nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], 1e-2)
    held_out = ring_batch(256, gen)
    with gendiag.Monitor(run_dir, task="vae", probes=["vae-health"], strict=True, check_every=None) as mon:
        for it in range(1, 201):
            x = ring_batch(64, gen)
            mu, logvar = enc(x).chunk(2, dim=1)
            z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=gen)
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
            loss = ((dec(z) - x) ** 2).sum(1).mean() + beta * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(it, loss.item(), kl=kl.item())
            if it % 25 == 0:
                with torch.no_grad():
                    mon.observe_latents(*enc(held_out).chunk(2, dim=1))
                if peek:
                    for probe in mon.probes:
                        probe.findings(mon.ctx)
    return end_findings(run_dir)


def test_findings_any_time_leave_a_user_vae_run_unchanged(tmp_path: Path) -> None:
    collapsed = user_vae(tmp_path / "quiet", peek=False, beta=50.0)
    assert [f["code"] for f in collapsed] == ["posterior-collapse"]
    assert user_vae(tmp_path / "peeked", peek=True, beta=50.0) == collapsed
    assert user_vae(tmp_path / "healthy", peek=True, beta=0.1) == []

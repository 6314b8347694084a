"""The diffusion-schedule probe: the signal left at the last step, on real DDPM loops and on hand-made schedules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import gendiag
from gendiag.quantities.schedule import leftover_ratio, summarize_schedule
from tests.loops import DiffusionSetup, alphas_cumprod, codes, train_ddpm

PROBE = ["schedule"]


def linear_alphas_cumprod(steps: int, beta_end: float) -> torch.Tensor:
    return torch.cumprod(1 - torch.linspace(1e-4, beta_end, steps, dtype=torch.float64), dim=0)


def test_swiss_roll_tutorial_schedule_keeps_sixty_percent_of_the_signal() -> None:
    """The DDPM swiss-roll tutorial's 100-step linear β from 1e-4 to 0.02: ᾱ_T = 0.3636, sqrt(ᾱ_T) = 0.603."""
    summary = summarize_schedule(linear_alphas_cumprod(100, 0.02))
    assert summary.steps == 100
    assert summary.alpha_bar_last == pytest.approx(0.36356, abs=1e-4)
    assert summary.signal_last == pytest.approx(0.60296, abs=1e-4)
    assert summary.noise_last == pytest.approx(math.sqrt(1 - summary.alpha_bar_last))
    assert leftover_ratio(summary) == pytest.approx(0.7558, abs=1e-3)
    standard = summarize_schedule(linear_alphas_cumprod(1000, 0.02).tolist())
    assert standard.alpha_bar_last == pytest.approx(4.036e-5, rel=1e-3) and standard.signal_last < 0.007


def test_schedule_ends() -> None:
    assert leftover_ratio(summarize_schedule([1.0])) == math.inf
    ends_at_zero = summarize_schedule([0.9, 0.5, 0.0])
    assert ends_at_zero.signal_last == 0 and ends_at_zero.log_snr_last == -math.inf
    assert leftover_ratio(summarize_schedule([0.5, 0.01]), data_rms=10.0) == pytest.approx(1.0 / math.sqrt(0.99))


@pytest.mark.parametrize("schedule, match", [
    (torch.linspace(1e-4, 0.02, 100), r"rises after index 0 \(these look like β_t"),
    ([0.9, 0.95], "rises after index 0$"),
    ([[0.9, 0.5]], "1-D sequence"),
    ([], "1-D sequence"),
    ([0.9, float("nan")], "NaN"),
    ([1.5, 0.5], r"in \[0, 1\]"),
    ("abc", "1-D sequence of ᾱ_t numbers"),
])
def test_bad_schedules_raise(schedule: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        summarize_schedule(schedule)


def test_short_schedule_fires_critical_on_a_ddpm_loop(tmp_path: Path) -> None:
    setup = DiffusionSetup(steps=20, timesteps=100, beta_end=0.02)
    report = train_ddpm(tmp_path, setup, probes=PROBE)
    finding = next(f for f in report.findings if f.code == "schedule-not-reaching-noise")
    assert finding.severity == "critical"
    assert finding.evidence["signal_last"] == pytest.approx(0.603, abs=1e-3)
    assert 0.5 < finding.evidence["data_rms"] < 1.5
    expected = finding.evidence["signal_last"] * finding.evidence["data_rms"] / finding.evidence["noise_last"]
    assert finding.evidence["leftover_signal_to_noise"] == pytest.approx(expected)
    assert (tmp_path / finding.figure).is_file() and finding.figure == "figures/schedule.png"
    assert "Diffusion schedule" in (tmp_path / "report.md").read_text()


def test_schedule_that_reaches_noise_is_silent(tmp_path: Path) -> None:
    report = train_ddpm(tmp_path, DiffusionSetup(steps=20), probes=PROBE)
    assert alphas_cumprod(DiffusionSetup()).sqrt()[-1] < 0.01
    assert codes(report, ("critical", "warning", "info")) == set()


def test_leftover_scales_with_the_data_and_gives_a_warning_band(tmp_path: Path) -> None:
    schedule = linear_alphas_cumprod(1000, 0.02)
    generator = torch.Generator().manual_seed(0)
    for scale, expected in ((1.0, None), (100.0, "critical"), (20.0, "warning")):
        with gendiag.Monitor(tmp_path / f"x{scale:g}", task="diffusion", probes=PROBE, strict=True,
                             schedule=schedule) as mon:
            mon.observe_data(scale * torch.randn(256, 2, generator=generator), role="data")
            mon.step(1, 1.0)
        found = [f.severity for f in mon.finish().findings]
        assert found == ([] if expected is None else [expected]), scale


def test_without_a_schedule_the_probe_is_quiet(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path, task="diffusion", probes=PROBE, strict=True) as mon:
        mon.step(1, 1.0)
    report = mon.finish()
    assert report.findings == [] and report.sections == []


def test_betas_passed_as_schedule_are_refused_at_once_with_the_hint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"fact 'schedule'.*cumprod\(1 - betas\)"):
        gendiag.Monitor(tmp_path, task="diffusion", probes=PROBE, schedule=torch.linspace(1e-4, 0.02, 100))

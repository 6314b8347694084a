"""samples-unlike-data on loops written as a user would write them (their data helper, schedule and sampler),
and the measurement behind it on hand-made samples."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import gendiag
from gendiag.metrics.samples_vs_data import compare_to_data

PROBES = ["samples_vs_data"]


def two_moons(n: int, gen: torch.Generator) -> torch.Tensor:
    """The user's own moons: two interleaved half circles, noise 0.05."""
    which = torch.randint(0, 2, (n,), generator=gen)
    angle = math.pi * torch.rand(n, generator=gen)
    upper = torch.stack([angle.cos(), angle.sin()], 1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], 1)
    return torch.where(which[:, None] == 0, upper, lower) + 0.05 * torch.randn(n, 2, generator=gen)


class Denoiser(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


def run_ddpm(run_dir: Path, upward: bool, steps: int = 300, T: int = 100) -> gendiag.Report:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    betas = torch.linspace(1e-4, 0.2, T)
    alphas = 1.0 - betas
    alpha_bars = torch.cumprod(alphas, dim=0)
    model = Denoiser()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with gendiag.Monitor(run_dir, task="diffusion", probes=PROBES, strict=True) as mon:
        for it in range(steps):
            x0 = two_moons(256, gen)
            mon.observe_data(x0)
            t = torch.randint(0, T, (256,), generator=gen)
            eps = torch.randn(256, 2, generator=gen)
            ab = alpha_bars[t].unsqueeze(1)
            loss = ((model(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t / T) - eps) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(it, loss)
        x = torch.randn(1000, 2, generator=gen)
        with torch.no_grad(), mon.sampling():
            for t in (range(T) if upward else reversed(range(T))):
                eps = model(x, torch.full((1000,), t / T))
                x = (x - betas[t] / (1 - alpha_bars[t]).sqrt() * eps) / alphas[t].sqrt()
                if t > 0:
                    x = x + betas[t].sqrt() * torch.randn(x.shape, generator=gen)
        mon.observe_samples(x)
    return mon.finish()


def run_flow(run_dir: Path, backwards: bool, steps: int = 300, n_steps: int = 50) -> gendiag.Report:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = Denoiser()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with gendiag.Monitor(run_dir, task="flow", probes=PROBES, strict=True) as mon:
        for it in range(steps):
            x1 = two_moons(256, gen)
            x0 = torch.randn_like(x1)
            mon.observe_data(x1, role="data")
            mon.observe_data(x0, role="source")
            t = torch.rand(256, generator=gen)
            xt = (1 - t[:, None]) * x0 + t[:, None] * x1
            loss = ((model(xt, t) - (x1 - x0)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(it, loss)
        x = torch.randn(1000, 2, generator=gen)
        dt = 1.0 / n_steps
        with torch.no_grad(), mon.sampling():
            for i in range(n_steps):
                if backwards:  # from t = 1 down to 0
                    x = x - dt * model(x, torch.full((1000,), 1.0 - i * dt))
                else:
                    x = x + dt * model(x, torch.full((1000,), i * dt))
        mon.observe_samples(x)
    return mon.finish()


def finding(report: gendiag.Report) -> gendiag.Finding | None:
    found = [f for f in report.findings if f.code == "samples-unlike-data"]
    assert len(found) <= 1
    return found[0] if found else None


@pytest.mark.slow
def test_ddpm_sampler_run_upward_in_time_is_critical(tmp_path: Path) -> None:
    found = finding(run_ddpm(tmp_path, upward=True))
    assert found is not None and found.severity == "critical"
    assert found.evidence["w2_over_floor"] > 5 and found.evidence["w2_over_spread"] > 0.6
    assert "reversed(range(T))" in found.suggestion
    assert (tmp_path / found.figure).is_file()


def test_ddpm_sampler_run_downward_is_silent(tmp_path: Path) -> None:
    report = run_ddpm(tmp_path, upward=False)
    assert finding(report) is None
    saved = (tmp_path / "report.md").read_text()
    assert "Samples against the data" in saved


@pytest.mark.slow
def test_flow_sampler_integrating_from_one_to_zero_is_critical(tmp_path: Path) -> None:
    found = finding(run_flow(tmp_path, backwards=True))
    assert found is not None and found.severity == "critical"
    assert found.evidence["std_ratio"] > 2 and found.evidence["mean_offset"] > 1
    assert "t = 0" in found.suggestion


@pytest.mark.slow
def test_flow_sampler_integrating_forward_is_silent(tmp_path: Path) -> None:
    assert finding(run_flow(tmp_path, backwards=False)) is None


def test_a_briefly_trained_flow_is_silent(tmp_path: Path) -> None:
    assert finding(run_flow(tmp_path, backwards=False, steps=100, n_steps=20)) is None


def test_samples_equal_to_data_sit_at_the_floor() -> None:
    gen = torch.Generator().manual_seed(0)
    data = two_moons(2000, gen)
    same = two_moons(1000, gen)
    gap = compare_to_data(same, data)
    assert gap.std_ratio == pytest.approx(1, abs=0.05) and gap.rms_ratio == pytest.approx(1, abs=0.05)
    assert gap.mean_offset < 0.1 and gap.n_compared == 1000 and gap.space == "data space"
    assert 0.7 < gap.w2_over_floor < 1.4
    assert gap.coverage == pytest.approx(gap.coverage_floor, abs=0.05)
    copy = compare_to_data(data[:500], data)
    assert copy.std_ratio == pytest.approx(1, abs=0.1)


def test_five_times_the_data_has_scale_ratio_five() -> None:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(2000, 3, generator=gen) * torch.tensor([1.0, 2.0, 0.5])
    gap = compare_to_data(5 * data[:1000], data)
    assert gap.std_ratio == pytest.approx(5, rel=0.03)
    assert gap.rms_ratio == pytest.approx(5, rel=0.03)
    assert gap.dim_std_ratio_low == pytest.approx(5, rel=0.08) and gap.dim_std_ratio_high == pytest.approx(5, rel=0.08)
    assert gap.w2_over_floor > 20


def test_shifted_samples_measure_their_offset_in_data_spreads() -> None:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(2000, 2, generator=gen)  # spread sqrt(2)
    gap = compare_to_data(torch.randn(1000, 2, generator=gen) + torch.tensor([3.0, 0.0]), data)
    assert gap.mean_offset == pytest.approx(3 / math.sqrt(2), rel=0.05)
    assert gap.std_ratio == pytest.approx(1, abs=0.05)


def test_images_are_compared_in_principal_components() -> None:
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(4, 64, generator=gen)
    data = (torch.randn(600, 4, generator=gen) @ basis).reshape(600, 1, 8, 8)
    gap = compare_to_data((torch.randn(300, 4, generator=gen) @ basis).reshape(300, 1, 8, 8), data)
    assert gap.dimension == 64 and gap.space.startswith("PCA-10")
    assert gap.explained_variance == pytest.approx(1, abs=1e-6)
    assert gap.w2_over_floor < 1.5 and gap.std_ratio == pytest.approx(1, abs=0.1)


def test_reservoir_is_bounded_and_uses_its_own_generator(tmp_path: Path) -> None:
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    with gendiag.Monitor(tmp_path, task="generic", probes=PROBES, strict=True) as mon:
        for step in range(40):
            mon.observe_data(torch.full((128, 2), float(step)))
            mon.step(step)
        probe = mon.probes[0]
        assert len(probe.data) == 2048 and probe.data.seen == 40 * 128
        kept = probe.data.rows[:, 0]
        assert kept.min() < 10 and kept.max() > 30  # rows from the whole run, not the first batches only
        mon.observe_samples(torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) + 20)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_mismatched_widths_and_too_few_rows_are_reported_not_judged(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path, task="gan", probes=PROBES, strict=True) as mon:
        mon.observe_data(torch.randn(64, 3))
        mon.observe_samples(torch.randn(64, 2))
    report = mon.finish()
    assert report.findings == []
    assert "the samples have 2 values each and the data rows 3" in (tmp_path / "report.md").read_text()


def observed(run_dir: Path, samples: torch.Tensor, task: str = "gan", **facts: object) -> gendiag.Finding | None:
    """A monitor that saw 2,048 ring points as data and then `samples`."""
    gen = torch.Generator().manual_seed(3)
    angle = 2 * math.pi * torch.randint(0, 8, (2048,), generator=gen) / 8
    ring = torch.stack([angle.cos(), angle.sin()], 1) + 0.02 * torch.randn(2048, 2, generator=gen)
    with gendiag.Monitor(run_dir, task=task, probes=PROBES, strict=True, **facts) as mon:
        for step, batch in enumerate(ring.split(256)):
            mon.observe_data(batch)
            mon.step(step)
        mon.observe_samples(samples)
    return finding(mon.finish())


@pytest.mark.slow
def test_with_known_modes_samples_piled_on_one_mode_are_left_to_mode_collapse(tmp_path: Path) -> None:
    centers = torch.stack([torch.cos(torch.arange(8) * math.pi / 4), torch.sin(torch.arange(8) * math.pi / 4)], 1)
    piled = torch.tensor([1.0, 0.0]) + 0.02 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(4))
    assert observed(tmp_path / "facts", piled, modes=centers, mode_std=0.02) is None
    without = observed(tmp_path / "no_facts", piled)
    assert without is not None and without.severity == "critical" and without.evidence["std_ratio"] < 1 / 3
    wide = 5 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(5))
    found = observed(tmp_path / "wide", wide, modes=centers, mode_std=0.02)
    assert found is not None and found.severity == "critical" and "mode-collapse" in found.message


@pytest.mark.slow
def test_a_vae_is_not_faulted_for_samples_narrower_than_the_data(tmp_path: Path) -> None:
    """8x8 binary images: 8 prototypes with 40% of the pixels flipped; a VAE's samples are the pixel means (0.4 or
    0.6), narrower than the data (std ratio about 0.2) by design."""
    gen = torch.Generator().manual_seed(6)
    prototypes = (torch.rand(8, 64, generator=gen) < 0.5).float()
    means = 0.6 * prototypes + 0.4 * (1 - prototypes)
    data = torch.bernoulli(means[torch.randint(0, 8, (2048,), generator=gen)], generator=gen)
    samples = means[torch.randint(0, 8, (1000,), generator=gen)]
    found = {}
    for task in ("vae", "generic"):
        with gendiag.Monitor(tmp_path / task, task=task, probes=PROBES, strict=True) as mon:
            for step, batch in enumerate(data.split(256)):
                mon.observe_data(batch.reshape(-1, 1, 8, 8))
                mon.step(step)
            mon.observe_samples(samples.reshape(-1, 1, 8, 8))
        found[task] = finding(mon.finish())
    assert found["vae"] is None
    assert found["generic"] is not None and found["generic"].severity == "critical"
    assert found["generic"].evidence["std_ratio"] < 1 / 3 and "latent prior" in found["generic"].suggestion

"""Figures of the sampling causes (issue 22): `sampler-parameterization-mismatch`, `sampler-schedule-misindexed`,
`conditioning-ignored` and `null-label-untrained` each name a figure that the broken run writes into its folder and
the healthy twin does not write.

Loops written here as a user would (their own schedule and names, keyword arguments, a DataLoader, one-hot
conditions with all-zero rows as the null one), with only the public API; the loops of tests/test_cause_codes.py,
tests/test_conditioning.py and tests/test_guidance.py (slow); and the figure functions on given numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gendiag
from gendiag.figures.conditioning import agreement_figure, null_label_figure
from gendiag.figures.diffusion_sampler import sampler_readings
from gendiag.figures.drawing import png_bytes
from gendiag.quantities.conditioning import Agreement
from gendiag.rules.thresholds import (CONDITIONING_CRITICAL_SCORE, CONDITIONING_WARNING_SCORE, NULL_TRAIN_SHARE,
                                      SAMPLER_FIT, SAMPLER_TRAINED_NEAR)

SAMPLER_FIGURE = "figures/diffusion_sampler.png"
AGREEMENT_FIGURE = "figures/conditioning_agreement.png"
PNG = b"\x89PNG"


def found(findings: list[gendiag.Finding], code: str) -> gendiag.Finding:
    [finding] = [f for f in findings if f.code == code]
    return finding


def assert_figure_named(run: Path, finding: gendiag.Finding, path: str) -> None:
    """The finding names the figure, the run folder holds it, and the report shows it."""
    assert finding.figure == path
    assert (run / path).stat().st_size > 0
    assert path in (run / "report.md").read_text(encoding="utf-8")


# -- the figure functions on given numbers ----------------------------------------------------------------------------

STEPS = [{"t": t, "t_next": t - 1, "error_eps": 0.4, "error_x0": 1e-9, "reading": "x0"} for t in (4, 3, 2, 1)]
TRAINED = {"reading": "eps", "distance_clean": 0.55, "distance_noisy": 0.12, "rows_clean": 300, "rows_noisy": 280}
LAST = {"a": 0.05, "b": 0.99, "residual": 1e-4, "t": 0.0, "abar": 0.9999, "last_change": 0.8}


def test_the_sampler_figure_shows_both_readings_the_training_ends_and_the_last_step() -> None:
    figure = sampler_readings(STEPS, TRAINED, LAST, "x0")
    assert png_bytes(figure).startswith(PNG)  # laid out and drawn: the layout is computed at the draw
    errors, ends, fit = figure.axes
    eps, x0, threshold = errors.get_lines()
    assert list(eps.get_ydata()) == [0.4] * 4 and min(x0.get_ydata()) >= 1e-6  # drawn on a log scale
    assert list(threshold.get_ydata()) == [SAMPLER_FIT] * 2
    assert [bar.get_height() for bar in ends.patches] == [0.55, 0.12]
    assert list(ends.get_lines()[0].get_ydata()) == [SAMPLER_TRAINED_NEAR] * 2
    assert [bar.get_height() for bar in fit.containers[0]] == [0.05, 0.99]
    assert list(fit.collections[-1].get_offsets()[:, 1]) == [1.0, 0.0]  # a healthy last step: a = 1, b = 0


def test_the_sampler_figure_says_what_it_did_not_see() -> None:
    figure = sampler_readings(STEPS, None, None, None)
    assert [axis.axison for axis in figure.axes] == [True, False, False]
    assert "no samples observed" in figure.axes[2].texts[0].get_text()


def agreement(data_rate: float, sample_rate: float) -> Agreement:
    return Agreement(method="nearest neighbours", classes=3, samples=90, sample_rate=sample_rate, data_rate=data_rate,
                     chance=1 / 3, per_class={k: {"samples": 30, "rate": sample_rate, "most_assigned": k}
                                              for k in range(3)}, data_rows_per_class=100)


def test_the_agreement_figure_colours_data_and_samples_by_class_against_the_levels() -> None:
    generator = np.random.default_rng(0)
    data, labels = generator.normal(size=(300, 2)), np.repeat(np.arange(3), 100)
    samples, asked = generator.normal(size=(90, 2)), np.repeat(np.arange(3), 30)
    figure = agreement_figure(agreement(0.95, 0.35), data, labels, samples, asked, ("x[0]", "x[1]"))
    assert png_bytes(figure).startswith(PNG)
    data_axis, samples_axis, bars = figure.axes
    assert len(data_axis.collections) == len(samples_axis.collections) == 3  # one colour per class
    assert samples_axis.get_xlim() == data_axis.get_xlim()
    assert [bar.get_height() for bar in bars.patches] == [0.35] * 3
    room = 0.95 - 1 / 3
    levels = [line.get_ydata()[0] for line in bars.get_lines()]
    assert levels == pytest.approx([1 / 3, 0.95, 1 / 3 + CONDITIONING_WARNING_SCORE * room,
                                    1 / 3 + CONDITIONING_CRITICAL_SCORE * room])
    assert "score 0.03" in bars.get_title()


def test_the_agreement_figure_of_labels_at_chance_draws_the_chance_band() -> None:
    generator = np.random.default_rng(0)
    figure = agreement_figure(agreement(0.33, 0.3), generator.normal(size=(300, 2)), np.repeat(np.arange(3), 100),
                              np.zeros((0, 2)), np.zeros(0, dtype=int), ("PC1", "PC2"))
    assert "labels at chance" in figure.axes[2].get_title()
    assert len(figure.axes[2].get_lines()) == 3


def test_the_null_label_figure_shows_each_condition_in_training_and_sampling() -> None:
    figure = null_label_figure("model", {"0": 300, "1": 200}, {"0": 60, "1": 60, "4": 120}, "4")
    assert png_bytes(figure).startswith(PNG)
    [axis] = figure.axes
    training, sampling = axis.containers
    assert [bar.get_height() for bar in training] == [0.6, 0.4, 0.0]  # the null condition last, never trained
    assert [bar.get_height() for bar in sampling] == [0.25, 0.25, 0.5]
    assert training[2].get_hatch() == "//"
    assert list(axis.get_lines()[0].get_ydata()) == [NULL_TRAIN_SHARE] * 2
    assert [label.get_text() for label in axis.get_xticklabels()] == ["0", "1", "4\n(null)"]


# -- a user's DDIM: their own schedule, keyword arguments, a strided sampler ------------------------------------------

class EpsModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([sample, timestep.float()[:, None] / 200], 1))


def two_blobs(n: int, generator: torch.Generator) -> torch.Tensor:
    side = torch.randint(0, 2, (n, 1), generator=generator).float() * 2 - 1
    return torch.cat([side, -side], 1) + 0.2 * torch.randn(n, 2, generator=generator)


def ddim_run(run: Path, prev_wraps: bool, steps: int = 60) -> list[gendiag.Finding]:
    """A DDIM over every 20th of 200 timesteps; `prev_wraps`: the previous ᾱ read as alphas_cumprod[t - 20] at the
    last step too (index -1: the schedule's noisiest end) instead of 1."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    betas = torch.linspace(1e-4, 0.05, 200)
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    model = EpsModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run, task="diffusion", probes=["diffusion_sampler"], schedule=alphas_cumprod,
                          check_every=None)
    mon.watch(model, x_arg="sample", t_arg="timestep")
    for step in range(steps):
        clean = two_blobs(128, gen)
        timesteps = torch.randint(0, 200, (128,), generator=gen)
        noise = torch.randn(clean.shape, generator=gen)
        a = alphas_cumprod[timesteps][:, None]
        loss = F.mse_loss(model(sample=a.sqrt() * clean + (1 - a).sqrt() * noise, timestep=timesteps), noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        mon.step(step, loss.detach())
    with torch.no_grad(), mon.sampling():
        sample = torch.randn(256, 2, generator=gen)
        for t in range(199, -1, -20):
            prev_t = t - 20
            alpha_prev = alphas_cumprod[prev_t] if prev_t >= 0 or prev_wraps else torch.tensor(1.0)
            eps = model(sample=sample, timestep=torch.full((256,), t))
            x0 = (sample - (1 - alphas_cumprod[t]).sqrt() * eps) / alphas_cumprod[t].sqrt()
            sample = alpha_prev.sqrt() * x0 + (1 - alpha_prev).sqrt() * eps
    mon.observe_samples(sample)
    return mon.finish().findings


def test_a_wrapping_ddim_writes_the_sampler_figure_and_a_healthy_one_does_not(tmp_path: Path) -> None:
    findings = ddim_run(tmp_path / "wraps", prev_wraps=True)
    finding = found(findings, "sampler-schedule-misindexed")
    assert abs(finding.evidence["last_step"]["b"]) > 0.9
    assert_figure_named(tmp_path / "wraps", finding, SAMPLER_FIGURE)
    findings = ddim_run(tmp_path / "healthy", prev_wraps=False)
    assert not {f.code for f in findings} & {"sampler-schedule-misindexed", "sampler-parameterization-mismatch"}
    assert not (tmp_path / "healthy" / SAMPLER_FIGURE).exists()


# -- a user's class-conditional flow: one-hot labels by keyword, a DataLoader, all-zero rows as the null label --------

CENTERS = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, 0.0], [0.0, -3.0]])


class Velocity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 + 1 + 4, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x, t[:, None], labels], 1))


def labelled_points(shuffled: bool) -> TensorDataset:
    """1024 points of four blobs, one-hot labels; `shuffled`: the labels permuted apart from the points."""
    gen = torch.Generator().manual_seed(3)
    k = torch.randint(0, 4, (1024,), generator=gen)
    points = CENTERS[k] + 0.3 * torch.randn(1024, 2, generator=gen)
    if shuffled:
        k = k[torch.randperm(1024, generator=gen)]
    return TensorDataset(points, F.one_hot(k, 4).float())


def guided_flow_run(run: Path, shuffled: bool = False, label_dropout: float = 0.0) -> list[gendiag.Finding]:
    """Two epochs of conditional flow matching, then classifier-free guided Euler sampling with the all-zero row as
    the null label; `label_dropout`: the share of training rows whose label is zeroed."""
    torch.manual_seed(0)
    loader = DataLoader(labelled_points(shuffled), batch_size=128, shuffle=True,
                        generator=torch.Generator().manual_seed(4))
    model = Velocity()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    mon = gendiag.Monitor(run, task="flow", probes=["conditioning"], check_every=None)
    mon.watch(model, cond_arg="labels")
    step = 0
    for _ in range(2):
        for x1, y in loader:
            mon.observe_data(x1, cond=y)
            keep = (torch.rand(len(y)) >= label_dropout).float()[:, None]
            x0, t = torch.randn_like(x1), torch.rand(len(x1))
            xt = (1 - t[:, None]) * x0 + t[:, None] * x1
            loss = ((model(xt, t, labels=y * keep) - (x1 - x0)) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            mon.step(step, loss)
            step += 1
    wanted = F.one_hot(torch.arange(4).repeat(30), 4).float()
    with torch.no_grad(), mon.sampling():
        x = torch.randn(len(wanted), 2)
        for i in range(10):
            t = torch.full((len(x),), i / 10)
            unconditional = model(x, t, labels=torch.zeros_like(wanted))
            conditional = model(x, t, labels=wanted)
            x = x + (unconditional + 2.0 * (conditional - unconditional)) / 10
    mon.observe_samples(x, cond=wanted)
    return mon.finish().findings


def test_labels_shuffled_in_the_dataset_write_the_agreement_figure(tmp_path: Path) -> None:
    finding = found(guided_flow_run(tmp_path / "run", shuffled=True, label_dropout=0.1), "conditioning-ignored")
    assert "do not tell its rows apart" in finding.title
    assert_figure_named(tmp_path / "run", finding, AGREEMENT_FIGURE)


def test_an_untrained_null_label_writes_its_figure_and_label_dropout_does_not(tmp_path: Path) -> None:
    finding = found(guided_flow_run(tmp_path / "broken"), "null-label-untrained")
    assert finding.evidence["null"] == "zeros" and finding.evidence["null_in_training"] == 0
    assert_figure_named(tmp_path / "broken", finding, "figures/conditioning_null_model.png")
    findings = guided_flow_run(tmp_path / "healthy", label_dropout=0.1)
    assert "null-label-untrained" not in {f.code for f in findings}
    assert not list((tmp_path / "healthy").glob("figures/conditioning_null_*"))


# -- the loops of the tests that name these causes ----------------------------------------------------------------

@pytest.mark.slow
def test_the_parameterization_mismatch_writes_the_sampler_figure(tmp_path: Path) -> None:
    from tests.test_cause_codes import train_ddpm

    finding = found(train_ddpm(tmp_path / "broken", 0, predicts="eps", sampler="ancestral-x0", steps=400),
                    "sampler-parameterization-mismatch")
    assert_figure_named(tmp_path / "broken", finding, SAMPLER_FIGURE)
    train_ddpm(tmp_path / "healthy", 0, predicts="eps", sampler="ancestral", steps=400)
    assert not (tmp_path / "healthy" / SAMPLER_FIGURE).exists()


@pytest.mark.slow
def test_rows_shuffled_apart_from_their_labels_write_the_agreement_figure(tmp_path: Path) -> None:
    from tests.test_conditioning import train_flow

    finding = found(train_flow(tmp_path / "broken", 0, bug="loop"), "conditioning-ignored")
    assert finding.evidence["score"] < CONDITIONING_CRITICAL_SCORE
    assert_figure_named(tmp_path / "broken", finding, AGREEMENT_FIGURE)
    train_flow(tmp_path / "healthy", 0)
    assert not (tmp_path / "healthy" / AGREEMENT_FIGURE).exists()


@pytest.mark.slow
def test_a_guided_ddpm_without_label_dropout_writes_the_null_label_figure(tmp_path: Path) -> None:
    from tests.test_guidance import train_ddpm

    finding = found(train_ddpm(tmp_path / "broken", 0, dropout=0.0, steps=300), "null-label-untrained")
    assert_figure_named(tmp_path / "broken", finding, "figures/conditioning_null_model.png")
    train_ddpm(tmp_path / "healthy", 0, dropout=0.1, steps=300)
    assert not list((tmp_path / "healthy").glob("figures/conditioning_null_*"))

"""DDPM/DDIM: schedule endpoints, the forward process, and samplers that are exact with an oracle noise predictor."""

from __future__ import annotations

import math

import pytest
import torch

from reference_models.ddpm import Schedule, ancestral_sample, cosine_betas, ddim_sample, linear_betas, \
    noise_prediction_loss
from reference_models.nets import VelocityMLP
from reference_models.unet import UNet

MEAN, STD = 3.0, 0.5


def gaussian_oracle(schedule: Schedule):
    """The exact E[ε | x_t] when the data are N(MEAN, STD²) in every coordinate: the best possible noise predictor."""
    abar = schedule.alphas_cumprod

    def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = abar[t.long()].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * MEAN) / (a * STD**2 + 1 - a)

    return predict


def test_tutorial_linear_schedule_stops_short_of_noise() -> None:
    schedule = Schedule.make("linear", 100, 1e-4, 0.02)
    assert schedule.betas[0].item() == pytest.approx(1e-4) and schedule.betas[-1].item() == pytest.approx(0.02)
    assert schedule.alphas_cumprod[-1].item() == pytest.approx(0.3638, abs=5e-4)
    assert Schedule.make("linear", 1000).alphas_cumprod[-1].item() == pytest.approx(4.04e-5, rel=0.02)


def test_cosine_schedule_endpoints_and_shape() -> None:
    betas = cosine_betas(1000)
    abar = Schedule(betas).alphas_cumprod
    assert betas.shape == (1000,) and bool((betas > 0).all()) and betas.max().item() <= 0.999
    assert abar[0].item() > 0.9999 and abar[-1].item() < 1e-8
    assert bool((abar[1:] < abar[:-1]).all())
    half = (math.cos((0.5 + 0.008) / 1.008 * math.pi / 2) / math.cos(0.008 / 1.008 * math.pi / 2)) ** 2
    assert abar[499].item() == pytest.approx(half, rel=1e-3)


def test_bad_schedule_arguments_fail_clearly() -> None:
    with pytest.raises(ValueError, match="beta_start <= beta_end"):
        linear_betas(10, 0.1, 0.01)
    with pytest.raises(ValueError, match="kind must be 'linear' or 'cosine'"):
        Schedule.make("quadratic", 10)


def test_q_sample_has_the_marginal_moments() -> None:
    schedule = Schedule.make("linear", 100)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 2), MEAN)
    t = torch.full((20000,), 60)
    xt = schedule.q_sample(x0, t, torch.randn(20000, 2, generator=generator))
    abar = schedule.alphas_cumprod[60].item()
    assert xt.mean().item() == pytest.approx(math.sqrt(abar) * MEAN, abs=0.02)
    assert xt.std().item() == pytest.approx(math.sqrt(1 - abar), abs=0.02)


def test_loss_reports_steps_and_per_sample_losses() -> None:
    schedule = Schedule.make("linear", 100)
    model = VelocityMLP(dim=2, hidden=32, depth=2, time_dim=16, time_scale=1.0)
    batch = noise_prediction_loss(model, torch.randn(64, 2), schedule, torch.Generator().manual_seed(0))
    assert batch.per_sample_loss.shape == (64,) and batch.t.shape == (64,)
    assert int(batch.t.min()) >= 0 and int(batch.t.max()) < 100
    assert batch.loss.item() == pytest.approx(batch.per_sample_loss.mean().item(), rel=1e-6)
    batch.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_ancestral_sampler_is_exact_with_the_oracle() -> None:
    schedule = Schedule.make("linear", 1000)
    x_T = torch.randn(20000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples = ancestral_sample(gaussian_oracle(schedule), schedule, x_T, torch.Generator().manual_seed(2))
    assert samples.mean().item() == pytest.approx(MEAN, abs=0.02)
    assert samples.std().item() == pytest.approx(STD, abs=0.02)


def test_ddim_converges_to_the_data_as_its_steps_grow() -> None:
    schedule = Schedule.make("cosine", 1000)
    x_T = torch.randn(20000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    errors = []
    for steps in (10, 50, 200, 1000):
        samples = ddim_sample(gaussian_oracle(schedule), schedule, x_T, steps=steps)
        assert samples.mean().item() == pytest.approx(MEAN, abs=0.02)
        errors.append(abs(samples.std().item() - STD))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.005
    with pytest.raises(ValueError, match="steps must be in 1..1000"):
        ddim_sample(gaussian_oracle(schedule), schedule, x_T, steps=0)


def test_short_schedule_biases_samples_started_from_pure_noise() -> None:
    """ᾱ_T ≈ 0.36: x_T still holds 0.6·x0, so starting the chain from N(0, I) loses part of the data's mean."""
    short = Schedule.make("linear", 100, 1e-4, 0.02)
    x_T = torch.randn(20000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples = ancestral_sample(gaussian_oracle(short), short, x_T, torch.Generator().manual_seed(2))
    assert samples.mean().item() < MEAN - 0.3


def test_unet_shapes_for_digits_and_mnist() -> None:
    model = UNet(channels=1, widths=(16, 32), time_dim=32)
    for size in (8, 28):
        out = model(torch.randn(3, 1, size, size), torch.tensor([0.0, 10.0, 999.0]))
        assert out.shape == (3, 1, size, size)
    with pytest.raises(ValueError, match="divisible by 2"):
        model(torch.randn(2, 1, 7, 7), torch.zeros(2))

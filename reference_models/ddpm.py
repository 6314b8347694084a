"""DDPM (Ho et al., 2020) and DDIM (Song et al., 2021): noise schedules, the forward process q(x_t | x_0), the
noise-prediction loss, ancestral sampling and deterministic DDIM sampling with fewer steps.

Time is the integer step t = 0 … T−1 (t = 0 is the first noising step); a network is called as ε_θ(x_t, t) with t a
float tensor of step indices of shape (B,)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def linear_betas(steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t evenly spaced from `beta_start` to `beta_end` (Ho et al. use 1e-4 … 0.02 with T = 1,000)."""
    if steps < 1:
        raise ValueError(f"linear_betas: steps must be >= 1, got {steps}")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"linear_betas: need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)


def cosine_betas(steps: int, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2), and
    β_t = min(1 − ᾱ_{t+1}/ᾱ_t, max_beta) (the clip keeps the last step finite)."""
    if steps < 1:
        raise ValueError(f"cosine_betas: steps must be >= 1, got {steps}")
    grid = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
    f = torch.cos((grid + offset) / (1 + offset) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(max=max_beta)


@dataclass(frozen=True)
class Schedule:
    """β_t, α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s for t = 0 … T−1 (float64, so ᾱ_T is exact even near 0)."""

    betas: torch.Tensor

    @classmethod
    def make(cls, kind: str, steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> "Schedule":
        """`kind` "linear" (with beta_start, beta_end) or "cosine"."""
        if kind == "linear":
            return cls(linear_betas(steps, beta_start, beta_end))
        if kind == "cosine":
            return cls(cosine_betas(steps))
        raise ValueError(f"Schedule.make: kind must be 'linear' or 'cosine', got {kind!r}")

    @property
    def steps(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas(self) -> torch.Tensor:
        return 1 - self.betas

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, dim=0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε for integer steps t of shape (B,)."""
        abar = _gather(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


@dataclass
class DiffusionBatch:
    """One training batch: the loss and what the Monitor's probes need (steps, per-sample losses)."""

    loss: torch.Tensor
    t: torch.Tensor
    per_sample_loss: torch.Tensor


def noise_prediction_loss(model: nn.Module, x0: torch.Tensor, schedule: Schedule,
                          generator: torch.Generator | None = None) -> DiffusionBatch:
    """‖ε − ε_θ(x_t, t)‖² averaged over features and the batch, with t uniform on 0 … T−1 (Ho et al.'s L_simple)."""
    t = torch.randint(0, schedule.steps, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    xt = schedule.q_sample(x0, t, noise)
    per_sample = (model(xt, t.to(x0.dtype)) - noise).pow(2).flatten(1).mean(1)
    return DiffusionBatch(loss=per_sample.mean(), t=t, per_sample_loss=per_sample.detach())


@torch.no_grad()
def ancestral_sample(model: NoisePredictor, schedule: Schedule, x_T: torch.Tensor,
                     generator: torch.Generator | None = None, clip: float | None = None) -> torch.Tensor:
    """DDPM's reverse chain from x_T over all T steps, with σ_t² = β̃_t (the posterior variance).

    The mean is the posterior mean of q(x_{t−1} | x_t, x̂_0) with x̂_0 predicted from ε_θ; `clip` bounds x̂_0 to
    [−clip, clip] (1 for images in [−1, 1]), None leaves it free."""
    abar = schedule.alphas_cumprod
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    betas = schedule.betas
    x = x_T.clone()
    for step in reversed(range(schedule.steps)):
        x0_hat = _predict_x0(model, x, step, abar[step], clip)
        coef_x0 = abar_prev[step].sqrt() * betas[step] / (1 - abar[step])
        coef_xt = schedule.alphas[step].sqrt() * (1 - abar_prev[step]) / (1 - abar[step])
        x = (coef_x0 * x0_hat + coef_xt * x).to(x_T.dtype)
        if step > 0:
            variance = betas[step] * (1 - abar_prev[step]) / (1 - abar[step])
            x = x + float(variance.sqrt()) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


@torch.no_grad()
def ddim_sample(model: NoisePredictor, schedule: Schedule, x_T: torch.Tensor, steps: int = 50,
                clip: float | None = None) -> torch.Tensor:
    """Deterministic DDIM (η = 0) on `steps` evenly spaced steps of the T-step schedule:
    x_prev = √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev)·ε̂."""
    if not 1 <= steps <= schedule.steps:
        raise ValueError(f"ddim_sample: steps must be in 1..{schedule.steps}, got {steps}")
    abar = schedule.alphas_cumprod
    times = torch.linspace(schedule.steps - 1, 0, steps).round().long().unique_consecutive().tolist()
    x = x_T.clone()
    for index, step in enumerate(times):
        x0_hat = _predict_x0(model, x, step, abar[step], clip)
        eps_hat = (x.double() - abar[step].sqrt() * x0_hat) / (1 - abar[step]).sqrt()
        abar_prev = abar[times[index + 1]] if index + 1 < len(times) else abar.new_tensor(1.0)
        x = (abar_prev.sqrt() * x0_hat + (1 - abar_prev).sqrt() * eps_hat).to(x_T.dtype)
    return x


def _predict_x0(model: NoisePredictor, x: torch.Tensor, step: int, abar: torch.Tensor,
                clip: float | None) -> torch.Tensor:
    """x̂_0 = (x_t − √(1 − ᾱ_t)·ε_θ(x_t, t)) / √ᾱ_t, in float64, optionally clipped."""
    t = torch.full((x.shape[0],), float(step), dtype=x.dtype, device=x.device)
    eps = model(x, t).double()
    x0_hat = (x.double() - (1 - abar).sqrt() * eps) / abar.sqrt()
    return x0_hat.clamp(-clip, clip) if clip is not None else x0_hat


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped (B, 1, …) to broadcast against `like`, in its dtype."""
    picked = values[t.long().cpu()].to(dtype=like.dtype, device=like.device)
    return picked.reshape(-1, *([1] * (like.dim() - 1)))

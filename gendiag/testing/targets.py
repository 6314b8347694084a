"""Gaussian-mixture targets whose flow-matching velocity and diffusion noise prediction are exact in closed form.

A target is Σ_j π_j N(μ_j, s_j² I). Along any affine path x = a·x_data + b·z, z ~ N(0, I) (flow matching: a = t,
b = 1 − t; diffusion: a = √ᾱ, b = √(1 − ᾱ)) the state given component j is N(a·μ_j, v_j I) with v_j = a²s_j² + b²,
so the posterior means of the data point and of the noise are exact:

    E[x_data | x, j] = μ_j + a·s_j²/v_j·(x − a·μ_j),   E[z | x, j] = b/v_j·(x − a·μ_j),

weighed by the posterior of the component. The flow velocity is E[x_data] − E[z], the ideal noise prediction E[z].
With s_j > 0 nothing is singular at t = 1 (unlike the empirical field of `gendiag.flow.exact_field`, which is the
limit s_j → 0 of this one with equal weights)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_j weights_j · N(means_j, scales_j² I); means (K, D), scales (K,) > 0, weights (K,) summing to 1."""

    means: torch.Tensor
    scales: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def make(cls, means: list[list[float]], scales: list[float],
             weights: list[float] | None = None) -> "GaussianMixture":
        """A mixture from plain lists (weights normalised; equal when None)."""
        mu = torch.tensor(means, dtype=torch.float64)
        if mu.dim() != 2 or mu.shape[0] != len(scales) or min(scales) <= 0:
            raise ValueError(f"GaussianMixture: need means (K, D) and K scales > 0, got shape {tuple(mu.shape)} and "
                             f"scales {scales}")
        w = torch.tensor([1.0] * len(scales) if weights is None else weights, dtype=torch.float64)
        if w.shape != (len(scales),) or bool((w <= 0).any()):
            raise ValueError(f"GaussianMixture: need {len(scales)} positive weights, got {weights}")
        return cls(mu, torch.tensor(scales, dtype=torch.float64), w / w.sum())

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def components(self) -> int:
        return self.means.shape[0]

    def describe(self) -> str:
        """One line, for failure messages."""
        parts = [f"{w:.2f}·N({_vector(m)}, {s:.3g}²I)" for m, s, w in zip(self.means.tolist(), self.scales.tolist(),
                                                                         self.weights.tolist())]
        return f"{self.dim}-D mixture " + " + ".join(parts)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n rows (n, D), float64."""
        picked = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[picked] + self.scales[picked, None] * noise

    def posterior(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E[x_data | x] and E[z | x] for states x (B, D) on the path x = a·x_data + b·z, with a, b of shape (B,)
        or one value each."""
        x = x.double()
        a, b = (torch.as_tensor(v, dtype=torch.float64).reshape(-1).expand(x.shape[0])[:, None, None] for v in (a, b))
        s2 = self.scales.pow(2)[None, :, None]
        v = a ** 2 * s2 + b ** 2                                    # (B, K, 1)
        offset = x[:, None, :] - a * self.means[None]               # (B, K, D)
        logits = (self.weights.log()[None] - 0.5 * self.dim * v[..., 0].log()
                  - offset.pow(2).sum(2) / (2 * v[..., 0]))
        r = torch.softmax(logits, dim=1)[:, :, None]
        data = (r * (self.means[None] + a * s2 / v * offset)).sum(1)
        noise = (r * (b / v * offset)).sum(1)
        return data, noise

    def velocity(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """The exact marginal velocity of the linear path x_t = t·x1 + (1 − t)·x0, x0 ~ N(0, I); t a float or (B,)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        data, noise = self.posterior(x, t, 1 - t)
        return data - noise

    def eps(self, x: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
        """The ideal noise prediction at x_t = √ᾱ·x0 + √(1 − ᾱ)·ε; ᾱ a float or (B,)."""
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
        return self.posterior(x, alpha_bar.sqrt(), (1 - alpha_bar).sqrt())[1]


def gaussian_flow_map(target: GaussianMixture, x0: torch.Tensor) -> torch.Tensor:
    """Where the exact flow ODE takes x0 at t = 1 for a one-component target N(μ, s²I): μ + s·x0 (the state is
    t·μ + √(t²s² + (1 − t)²)·x0 at every t)."""
    _single(target, "gaussian_flow_map")
    return target.means[0] + target.scales[0] * x0.double()


def gaussian_ddim_map(target: GaussianMixture, x_T: torch.Tensor, alpha_bar_T: float) -> tuple[torch.Tensor, float]:
    """Where the probability-flow ODE takes x_T at ᾱ = ᾱ_T to ᾱ = 1 for a one-component target, and its gain.

    In x̄ = x/√ᾱ and σ² = (1 − ᾱ)/ᾱ (DDIM's variables) the ODE is dx̄/dσ = ε̂ and x̄ − μ grows like √(s² + σ²)."""
    _single(target, "gaussian_ddim_map")
    mu, s = target.means[0], float(target.scales[0])
    sigma2 = (1 - alpha_bar_T) / alpha_bar_T
    gain = s / math.sqrt(s * s + sigma2)
    return mu + (x_T.double() / math.sqrt(alpha_bar_T) - mu) * gain, gain


def _single(target: GaussianMixture, where: str) -> None:
    if target.components != 1:
        raise ValueError(f"{where}: closed form only for a one-component target, got {target.components}")


def _vector(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"

"""Velocity and noise networks for vectors: an MLP on [x, embedding(t)] with a sinusoidal time embedding."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """t ↦ [sin(t·f_k), cos(t·f_k)] with frequencies geometric from 1 to `max_period`, as in the Transformer and
    DDPM. `scale` maps the model's time range onto the embedding's (1000 for t in [0, 1], 1 for integer steps)."""

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"SinusoidalEmbedding: dim must be an even number >= 2, got {dim}")
        half = dim // 2
        frequencies = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.scale = scale

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = self.scale * t.reshape(-1, 1).float() * self.frequencies
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class VelocityMLP(nn.Module):
    """u(x, t) for flat inputs x (B, dim): an MLP on [x, embedding(t)] with SiLU activations.

    Used for 2D point clouds and, with dim = H·W, for flattened images."""

    def __init__(self, dim: int = 2, hidden: int = 256, depth: int = 4, time_dim: int = 64,
                 time_scale: float = 1000.0) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"VelocityMLP: dim, hidden and depth must be positive, got {dim}, {hidden}, {depth}")
        self.embed = SinusoidalEmbedding(time_dim, scale=time_scale)
        layers: list[nn.Module] = [nn.Linear(dim + time_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)
        self.dim = dim

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        return self.net(torch.cat([x, self.embed(t).to(x.dtype)], dim=1))

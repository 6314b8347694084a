"""A small UNet noise predictor ε_θ(x, t) for small images (8×8 digits, 28×28 MNIST): residual blocks that add a
time embedding, one downsampling per level, skip connections from each encoder block to its decoder twin."""

from __future__ import annotations

import torch
from torch import nn

from reference_models.nets import SinusoidalEmbedding


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResidualBlock(nn.Module):
    """GroupNorm → SiLU → 3×3 conv, plus a per-channel shift from the time embedding, twice; a 1×1 skip when the
    channel count changes."""

    def __init__(self, channels_in: int, channels_out: int, time_dim: int) -> None:
        super().__init__()
        self.first = nn.Sequential(_norm(channels_in), nn.SiLU(), nn.Conv2d(channels_in, channels_out, 3, padding=1))
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, channels_out))
        self.second = nn.Sequential(_norm(channels_out), nn.SiLU(), nn.Conv2d(channels_out, channels_out, 3, padding=1))
        self.skip = nn.Conv2d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = self.first(x) + self.time(time)[:, :, None, None]
        return self.second(h) + self.skip(x)


class UNet(nn.Module):
    """ε_θ(x, t) for images (B, C, H, W) and integer steps t (B,). `widths` gives the channels per level; each level
    after the first halves H and W, so H and W must be divisible by 2^(len(widths) − 1)."""

    def __init__(self, channels: int = 1, widths: tuple[int, ...] = (32, 64), time_dim: int = 64,
                 time_scale: float = 1.0) -> None:
        super().__init__()
        if channels < 1 or not widths or min(widths) < 1:
            raise ValueError(f"UNet: channels and widths must be positive, got {channels}, {widths}")
        self.levels = len(widths)
        self.embed = nn.Sequential(SinusoidalEmbedding(time_dim, scale=time_scale), nn.Linear(time_dim, time_dim),
                                   nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pools = nn.ModuleList()
        previous = widths[0]
        for level, width in enumerate(widths):
            self.down.append(ResidualBlock(previous, width, time_dim))
            self.pools.append(nn.Conv2d(width, width, 3, stride=2, padding=1) if level < self.levels - 1
                              else nn.Identity())
            previous = width
        self.middle = ResidualBlock(previous, previous, time_dim)
        self.up = nn.ModuleList()
        self.unpools = nn.ModuleList()
        for level in reversed(range(self.levels)):
            width = widths[level]
            self.unpools.append(nn.Upsample(scale_factor=2, mode="nearest") if level < self.levels - 1
                                else nn.Identity())
            self.up.append(ResidualBlock(previous + width, width, time_dim))
            previous = width
        self.head = nn.Sequential(_norm(previous), nn.SiLU(), nn.Conv2d(previous, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"UNet: expected images (B, C, H, W), got shape {tuple(x.shape)}")
        factor = 2 ** (self.levels - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"UNet: H and W must be divisible by {factor}, got {tuple(x.shape[-2:])}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        time = self.embed(t)
        h = self.stem(x)
        skips = []
        for block, pool in zip(self.down, self.pools):
            h = block(h, time)
            skips.append(h)
            h = pool(h)
        h = self.middle(h, time)
        for block, unpool in zip(self.up, self.unpools):
            h = unpool(h)
            h = block(torch.cat([h, skips.pop()], dim=1), time)
        return self.head(h)

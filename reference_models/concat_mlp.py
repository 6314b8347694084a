"""The velocity network of the failed flattened-image project, kept exactly as it was: an MLP on the
concatenation [x, t] (no time embedding), SiLU between layers, widths 4097 → 2048 → 512 → 256 → 4096."""

from __future__ import annotations

import torch
from torch import nn


class ConcatMLP(nn.Module):
    """u(x, t) = MLP([x, t]) for flat inputs x of shape (B, D) and times t of shape (B,) or (B, 1)."""

    def __init__(self, dim: int, hidden: tuple[int, ...] = (2048, 512, 256)) -> None:
        super().__init__()
        if dim < 1 or not hidden or min(hidden) < 1:
            raise ValueError(f"ConcatMLP: dim and hidden widths must be positive, got dim={dim}, hidden={hidden}")
        widths = (dim + 1, *hidden)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.SiLU()]
        layers.append(nn.Linear(widths[-1], dim))
        self.net = nn.Sequential(*layers)
        self.dim = dim

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, t], dim=1))

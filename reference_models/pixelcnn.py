"""PixelCNN (van den Oord et al., 2016) for binary images: masked convolutions make the Bernoulli logit of pixel i
depend only on the pixels before it in raster order, so log p(x) = Σ_i log p(x_i | x_<i) is exact and sampling
goes pixel by pixel."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel sees only the rows above and the pixels to the left in the centre row; mask "A"
    also hides the centre pixel (first layer: a pixel never sees itself), mask "B" lets it through (later layers)."""

    def __init__(self, mask_type: str, channels_in: int, channels_out: int, kernel_size: int) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"MaskedConv2d: mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"MaskedConv2d: kernel_size must be odd, got {kernel_size}")
        super().__init__(channels_in, channels_out, kernel_size, padding=kernel_size // 2)
        centre = kernel_size // 2
        mask = torch.ones_like(self.weight)
        mask[:, :, centre, centre + (mask_type == "B"):] = 0
        mask[:, :, centre + 1:, :] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """Logits (B, 1, H, W) of p(x_i = 1 | x_<i) for binary images (B, 1, H, W) with values in {0, 1}: a mask-A
    convolution, `layers` residual mask-B convolutions, then two 1×1 convolutions."""

    def __init__(self, hidden: int = 64, layers: int = 5, first_kernel: int = 7, kernel: int = 3) -> None:
        super().__init__()
        if hidden < 1 or layers < 0:
            raise ValueError(f"PixelCNN: hidden must be >= 1 and layers >= 0, got {hidden}, {layers}")
        self.first = MaskedConv2d("A", 1, hidden, first_kernel)
        self.blocks = nn.ModuleList(MaskedConv2d("B", hidden, hidden, kernel) for _ in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"PixelCNN: expected binary images (B, 1, H, W), got shape {tuple(x.shape)}")
        h = self.first(2 * x - 1)
        for block in self.blocks:
            h = h + block(F.relu(h))
        return self.head(h)


def nll_bits_per_dim(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Exact negative log-likelihood of each image in bits per pixel, shape (B,)."""
    nats = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).mean(1)
    return nats / math.log(2)


@torch.no_grad()
def sample(model: PixelCNN, n: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw n binary images pixel by pixel in raster order: H·W forward passes, each fixing one pixel."""
    param = next(model.parameters())
    x = torch.zeros(n, 1, height, width, device=param.device, dtype=param.dtype)
    for row in range(height):
        for col in range(width):
            probability = torch.sigmoid(model(x)[:, 0, row, col])
            draw = torch.rand(n, generator=generator, dtype=probability.dtype).to(probability.device)
            x[:, 0, row, col] = (draw < probability).to(x.dtype)
    return x


def bernoulli_baseline_bits_per_dim(train: torch.Tensor, test: torch.Tensor, pseudocount: float = 1.0) -> float:
    """Bits per pixel on `test` of independent per-pixel Bernoullis fitted on `train` with Laplace smoothing: the
    bar a PixelCNN must beat to show it learned dependencies between pixels."""
    ones = train.sum(0)
    probability = (ones + pseudocount) / (train.shape[0] + 2 * pseudocount)
    logits = torch.logit(probability).expand_as(test)
    return float(nll_bits_per_dim(logits, test).mean())

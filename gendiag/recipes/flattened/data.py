"""The original's data streams: every data and source sample is a picture rendered from fresh points, flattened."""

from __future__ import annotations

import torch

from gendiag.data import make_distribution, rasterize
from gendiag.recipes.schemas.flattened import Data


def render_images(points: torch.Tensor, data: Data, scale: float) -> torch.Tensor:
    """Point clouds (B, N, 2) to flattened images (B, size²) under the case's mode."""
    return rasterize(points, size=data.image_size, scale=scale, mode=data.mode, flatten=True).images


class ImageStreams:
    """Fresh data and source images, each rendered from its own `points_per_image` points."""

    def __init__(self, data: Data) -> None:
        self.cfg = data
        self.target = make_distribution(data.distribution, **data.params)
        self.gaussian = make_distribution("gaussian")
        self.dim = data.image_size**2

    def data(self, n: int, generator: torch.Generator) -> torch.Tensor:
        points = self.target.sample(n * self.cfg.points_per_image, generator=generator).float()
        return render_images(points.view(n, self.cfg.points_per_image, 2), self.cfg, self.cfg.render_scale)

    def source(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.cfg.source == "pixel_noise":
            return torch.randn(n, self.dim, generator=generator)
        points = self.gaussian.sample(n * self.cfg.points_per_image, generator=generator).float()
        return render_images(points.view(n, self.cfg.points_per_image, 2), self.cfg, self.cfg.source_scale)

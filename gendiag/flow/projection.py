"""A plane to look at high-dimensional data on: the two leading principal components of the data.

For 2-D data the plane is the data space itself (identity basis, no rotation), so plots keep the original axes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Plane:
    """An affine plane in R^D: points mean + a·basis[0] + b·basis[1]; `explained` is the share of the data's
    variance each axis carries (1, 1 meaning "the data space itself" for 2-D data)."""

    mean: torch.Tensor  # (D,)
    basis: torch.Tensor  # (2, D), orthonormal rows
    explained: tuple[float, float]

    @property
    def identity(self) -> bool:
        return self.basis.shape[1] == 2

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates (N, 2) of points (N, D) on the plane."""
        return (x.to(self.mean.dtype) - self.mean) @ self.basis.T

    def project_vectors(self, v: torch.Tensor) -> torch.Tensor:
        """Components (N, 2) of vectors (N, D) (velocities) along the plane's axes."""
        return v.to(self.basis.dtype) @ self.basis.T

    def lift(self, coords: torch.Tensor) -> torch.Tensor:
        """Points (N, D) of the plane at coordinates (N, 2)."""
        return self.mean + coords.to(self.basis.dtype) @ self.basis

    def axis_labels(self) -> tuple[str, str]:
        if self.identity:
            return "x[0]", "x[1]"
        return (f"PC1 ({100 * self.explained[0]:.0f}% of variance)", f"PC2 ({100 * self.explained[1]:.0f}% of variance)")


def principal_plane(data: torch.Tensor) -> Plane:
    """The plane through the data's mean spanned by its two leading principal components (data (N, D), D >= 2).

    Signs are fixed (each axis's largest entry is positive) so the same data always gives the same picture."""
    if data.dim() != 2 or data.shape[1] < 2 or data.shape[0] < 2:
        raise ValueError(f"principal_plane: need data of shape (N >= 2, D >= 2), got {tuple(data.shape)}")
    data = data.double()
    if data.shape[1] == 2:
        return Plane(mean=torch.zeros(2, dtype=torch.float64), basis=torch.eye(2, dtype=torch.float64),
                     explained=(1.0, 1.0))
    mean = data.mean(0)
    _, singular, vh = torch.linalg.svd(data - mean, full_matrices=False)
    basis = vh[:2]
    flip = torch.sign(basis.gather(1, basis.abs().argmax(1, keepdim=True)))
    basis = basis * flip
    variance = singular ** 2
    total = float(variance.sum())
    explained = tuple(float(v) / total if total > 0 else 0.0 for v in variance[:2])
    return Plane(mean=mean, basis=basis, explained=(explained[0], explained[1]))


def bounding_box(coords: torch.Tensor, margin: float = 0.1) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) of plane coordinates (N, 2), widened by `margin` of each side's extent."""
    low, high = coords.amin(0), coords.amax(0)
    pad = (high - low).clamp(min=1e-6) * margin
    low, high = low - pad, high + pad
    return float(low[0]), float(high[0]), float(low[1]), float(high[1])


def grid(box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    """A size × size grid of plane coordinates over `box`, shape (size², 2), row-major in y then x."""
    xs = torch.linspace(box[0], box[1], size, dtype=torch.float64)
    ys = torch.linspace(box[2], box[3], size, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)

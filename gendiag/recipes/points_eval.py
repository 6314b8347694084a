"""Shared by the 2D point-cloud recipes: W2 of generated points against held-out data beside the two-sample floor
(two independent data draws), and a side-by-side scatter figure."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from gendiag.data import Distribution
from gendiag.metrics import wasserstein2


@dataclass
class PointsComparison:
    """W2 between `n` generated and `n` held-out points, and between two independent held-out draws (the floor)."""

    w2: float
    floor: float
    n: int
    heldout: torch.Tensor

    @property
    def ratio(self) -> float:
        return self.w2 / self.floor

    def text(self, what: str = "generated points") -> str:
        return (f"{self.n} {what} against {self.n} held-out data points: W2 = {self.w2:.4f}; two independent data "
                f"draws give the floor W2 = {self.floor:.4f}, so the ratio is {self.ratio:.2f} (1 is perfect).")


def compare_to_data(samples: torch.Tensor, distribution: Distribution, n: int,
                    generator: torch.Generator) -> PointsComparison:
    """Draw 2·n held-out points with `generator`; W2 of the first n samples against the first draw, and the floor."""
    n = min(n, samples.shape[0])
    heldout = distribution.sample(n, generator=generator)
    second = distribution.sample(n, generator=generator)
    return PointsComparison(w2=wasserstein2(samples[:n], heldout), floor=wasserstein2(second, heldout), n=n,
                            heldout=heldout)


def w2_to(samples: torch.Tensor, comparison: PointsComparison) -> float:
    """W2 of another set of samples against the same held-out draw."""
    return wasserstein2(samples[:comparison.n], comparison.heldout)


def scatter_panels(panels: list[tuple[str, torch.Tensor]]) -> plt.Figure:
    """One equal-aspect scatter per (title, points (N, 2)), on shared axes."""
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), sharex=True, sharey=True,
                                squeeze=False)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for index, (axis, (title, points)) in enumerate(zip(axes[0], panels)):
        axis.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, color=colours[index % len(colours)])
        axis.set_title(title)
        axis.set_aspect("equal")
    figure.tight_layout()
    return figure

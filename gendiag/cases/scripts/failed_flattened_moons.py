"""The failed flattened-moons project, written out as the plain script its notebook was: every sample is a 64x64
black-and-white picture of a whole cloud of two-moons points, flattened to 4,096 numbers; the "noise" is such a
picture of standard-Gaussian points; an MLP on [x, t] learns a velocity with the original's loss, in which the
source picture x0 stands where x_t belongs (the x_t bug) and the target (z - x0) / (1 - t) grows without bound as
t -> 1; learning rate 1e-6; Euler over 100 time points from a Gaussian picture. Its own classes, loop, loss and
sampler; data rendered by its own sampler class, no DataLoader. It knows nothing of gendiag.

The defaults are those of `cases/flattened_moons.yaml` (200 iterations of 16 images of 10,000 points; the original
had 1,000 of 256 of 50,000). Diagnose it unchanged with

    gendiag attach -- python cases/scripts/failed_flattened_moons.py
"""

import argparse
import math

import torch
from torch import nn


class PointCloudPictures:
    """Renders clouds of 2-D points into flattened size x size pictures: a pixel is 1 where a point lands, 0
    elsewhere; points outside the square [-extent, extent]^2 are clamped onto its border."""

    def __init__(self, size=64, points=10_000, extent=5.0, seed=0):
        self.size, self.points, self.extent = size, points, extent
        self.generator = torch.Generator().manual_seed(seed)

    def render(self, clouds):
        n = clouds.shape[0]
        cells = ((clouds + self.extent) / (2 * self.extent) * self.size).long().clamp(0, self.size - 1)
        flat = cells[..., 1] * self.size + cells[..., 0] + torch.arange(n)[:, None] * self.size**2
        pictures = torch.zeros(n * self.size**2)
        pictures[flat.reshape(-1)] = 1.0
        return pictures.view(n, self.size**2)

    def moons(self, n, noise=0.05, scale=5.0):
        """n pictures, each of `points` fresh points of make_moons(noise=0.05) * 5."""
        count = n * self.points
        outer = torch.rand(count, generator=self.generator) < 0.5
        angle = math.pi * torch.rand(count, generator=self.generator)
        x = torch.where(outer, angle.cos(), 1 - angle.cos())
        y = torch.where(outer, angle.sin(), 0.5 - angle.sin())
        cloud = torch.stack([x, y], dim=1) + noise * torch.randn(count, 2, generator=self.generator)
        return self.render((scale * cloud).view(n, self.points, 2))

    def gaussian(self, n):
        """n pictures, each of `points` fresh standard-Gaussian points: the project's "noise"."""
        return self.render(torch.randn(n, self.points, 2, generator=self.generator))


class VelocityMLP(nn.Module):
    """u(x, t) = MLP([x, t]): the time concatenated to the flattened picture, SiLU between layers."""

    def __init__(self, dim, hidden=(2048, 512, 256)):
        super().__init__()
        widths = (dim + 1, *hidden)
        layers = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], dim))

    def forward(self, x, t):
        return self.net(torch.cat([x, t.reshape(-1, 1).expand(len(x), 1)], dim=1))


def euler(model, x0, time_points=100):
    """Euler over `time_points` equal time points from 0 to 1, as the notebook sampled."""
    times = torch.linspace(0.0, 1.0, time_points)
    x = x0.clone()
    for k in range(time_points - 1):
        t = torch.full((len(x),), float(times[k]))
        x = x + (times[k + 1] - times[k]) * model(x, t)
    return x


def cosine(a, b):
    return nn.functional.cosine_similarity(a, b.expand_as(a), dim=1).mean().item()


def main():
    parser = argparse.ArgumentParser(description="the failed flattened-moons project, as a plain script")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--points", type=int, default=10_000, help="points rendered into each picture")
    parser.add_argument("--hidden", type=int, nargs="+", default=[2048, 512, 256])
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--time-points", type=int, default=100)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()

    torch.manual_seed(0)
    pictures = PointCloudPictures(points=args.points)
    model = VelocityMLP(pictures.size**2, tuple(args.hidden))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    target_picture = pictures.moons(1)
    starts = pictures.gaussian(4)
    checkpoints = {5, 15, 50, 100, args.steps}

    for iteration in range(1, args.steps + 1):
        z = pictures.moons(args.batch)
        x0 = pictures.gaussian(args.batch)
        t = torch.rand(args.batch)
        target = (z - x0) / (1 - t[:, None])
        loss = ((model(x0, t) - target) ** 2).sum(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration in checkpoints:
            model.eval()
            with torch.no_grad():
                images = euler(model, starts, args.time_points)
            model.train()
            to_start = nn.functional.cosine_similarity(images, starts, dim=1).mean().item()
            print(f"iteration {iteration}: loss {loss.item():.4g}, cosine to the target "
                  f"{cosine(images, target_picture):.3f}, to the start {to_start:.3f}")

    model.eval()
    with torch.no_grad():
        start = pictures.gaussian(args.samples)
        samples = euler(model, start, args.time_points)
    print(f"final: cosine to the target {cosine(samples, target_picture):.3f}, to the start "
          f"{nn.functional.cosine_similarity(samples, start, dim=1).mean().item():.3f}")


if __name__ == "__main__":
    main()

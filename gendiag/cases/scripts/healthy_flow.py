"""A healthy flow-matching script on 2-D data, written as a user would: eight Gaussians on a ring, a small MLP
velocity v(x, t), straight paths from N(0, I) noise, Euler sampling. It knows nothing of gendiag; run it bare or
as `gendiag attach -- python cases/scripts/healthy_flow.py`."""

import argparse

import torch
from torch import nn


class Velocity(nn.Module):
    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=1))


def ring(n, generator):
    angle = torch.randint(0, 8, (n,), generator=generator) * (torch.pi / 4)
    centers = 4 * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centers + 0.3 * torch.randn(n, 2, generator=generator)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = Velocity()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(args.steps):
        x1 = ring(args.batch, generator)
        x0 = torch.randn(args.batch, 2, generator=generator)
        t = torch.rand(args.batch, generator=generator)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        loss = ((model(xt, t) - (x1 - x0)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 500 == 0:
            print(f"step {step}: loss {loss.item():.4f}")
    model.eval()
    with torch.no_grad():
        x = torch.randn(args.samples, 2, generator=generator)
        for i in range(50):
            x = x + model(x, torch.full((len(x),), i / 50)) / 50
    radius = x.norm(dim=1)
    print(f"samples: mean radius {radius.mean():.2f} (data 4), std {radius.std():.2f}")


if __name__ == "__main__":
    main()

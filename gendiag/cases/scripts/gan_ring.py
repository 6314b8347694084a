"""A plain GAN script on 2-D data, written as a user would: eight Gaussians on a ring, an MLP generator and an MLP
discriminator with logits and BCE-with-logits, one discriminator step then one generator step per iteration. It
knows nothing of gendiag; run it bare or as `gendiag attach -- python cases/scripts/gan_ring.py`."""

import argparse

import torch
from torch import nn


def mlp(width_in, width_out, hidden=128):
    return nn.Sequential(nn.Linear(width_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, width_out))


def ring(n, generator):
    angle = torch.randint(0, 8, (n,), generator=generator) * (torch.pi / 4)
    return 2 * torch.stack([angle.cos(), angle.sin()], dim=1) + 0.05 * torch.randn(n, 2, generator=generator)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    G, D = mlp(8, 2), mlp(2, 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(args.batch, 1), torch.zeros(args.batch, 1)
    for step in range(args.steps):
        real = ring(args.batch, generator)
        fake = G(torch.randn(args.batch, 8, generator=generator))
        loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = bce(D(fake), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if step % 500 == 0:
            print(f"step {step}: loss_d {loss_d.item():.3f}, loss_g {loss_g.item():.3f}")
    with torch.no_grad():
        samples = G(torch.randn(2000, 8, generator=generator))
    print(f"samples: mean radius {samples.norm(dim=1).mean():.2f} (data 2)")


if __name__ == "__main__":
    main()

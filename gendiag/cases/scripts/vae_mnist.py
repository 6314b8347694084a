"""A plain VAE script, written as a user would: the MNIST test images shipped with this repository (read with gzip
and numpy), a DataLoader, an MLP encoder returning (mean, log-variance), the reparameterisation trick, Bernoulli
reconstruction loss plus KL. It knows nothing of gendiag; run it bare or as
`gendiag attach -- python cases/scripts/vae_mnist.py`."""

import argparse
import gzip
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

IMAGES = Path(__file__).resolve().parents[2] / "datasets" / "mnist" / "t10k-images-idx3-ubyte.gz"  # gendiag/datasets


class VAE(nn.Module):
    def __init__(self, latent=16, hidden=256):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def forward(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return self.decoder(z), mu, logvar


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    torch.manual_seed(0)
    with gzip.open(IMAGES) as stream:
        pixels = np.frombuffer(stream.read(), dtype=np.uint8, offset=16).reshape(-1, 784)[:args.images]
    images = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    loader = torch.utils.data.DataLoader(images, batch_size=128, shuffle=True)
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        total = 0.0
        for x in loader:
            logits, mu, logvar = model(x)
            recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
            loss = recon + kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        print(f"epoch {epoch}: loss {total / len(images):.1f}")
    model.eval()
    with torch.no_grad():
        samples = torch.sigmoid(model.decoder(torch.randn(256, 16)))
    print(f"samples: mean pixel {samples.mean():.3f} (data {images.mean():.3f})")


if __name__ == "__main__":
    main()

"""Compact reference VAEs: the convolutional MNIST VAE (latent 20, Bernoulli decoder: BCE summed over pixels plus
KL, with the KL weight annealed over the first epochs) and an MLP VAE with a Gaussian decoder for 2D points.

Both return `VAEOutput`: decoder output, posterior mean and log-variance. `vae_loss` sums the reconstruction term
over each sample's features and the KL over its latent dimensions, then averages over the batch (the classic
example sums over the batch too; the mean only rescales the gradient, which Adam undoes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DECODERS = ("bernoulli", "gaussian")


@dataclass
class VAEOutput:
    decoded: torch.Tensor  # logits (bernoulli) or means (gaussian), shaped like the input
    mu: torch.Tensor
    logvar: torch.Tensor


@dataclass
class VAELoss:
    loss: torch.Tensor
    recon: torch.Tensor  # per-sample reconstruction term, batch mean
    kl: torch.Tensor  # per-sample KL, batch mean
    kl_per_dim: torch.Tensor  # (latent,) batch-mean KL of each latent dimension


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I) drawn from `generator`."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


class ConvVAE(nn.Module):
    """(B, 1, 28, 28) images in [0, 1]: encoder 1→32→64 channels with stride-2 convolutions (28 → 14 → 7) and a
    hidden layer to μ and log σ² of size `latent`; decoder mirrored with transposed convolutions to pixel logits."""

    decoder_kind = "bernoulli"

    def __init__(self, latent: int = 20, width: int = 32, hidden: int = 256) -> None:
        super().__init__()
        if latent < 1 or width < 1 or hidden < 1:
            raise ValueError(f"ConvVAE: latent, width, hidden must be positive, got {latent}, {width}, {hidden}")
        self.latent, self.width = latent, width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, hidden), nn.ReLU(),
        )
        self.to_mu = nn.Linear(hidden, latent)
        self.to_logvar = nn.Linear(hidden, latent)
        self.from_latent = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                                         nn.Linear(hidden, 2 * width * 7 * 7), nn.ReLU())
        self.decoder_net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"ConvVAE: expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        hidden = self.encoder(x)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits (B, 1, 28, 28); `torch.sigmoid` gives the Bernoulli means."""
        return self.decoder_net(self.from_latent(z).view(-1, 2 * self.width, 7, 7))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        mu, logvar = self.encode(x)
        return VAEOutput(self.decode(reparameterize(mu, logvar, generator)), mu, logvar)


class MLPVAE(nn.Module):
    """(B, dim) vectors: SiLU MLP encoder to μ, log σ² of size `latent`; MLP decoder to the Gaussian decoder's
    mean (fixed variance `decoder_std`²)."""

    decoder_kind = "gaussian"

    def __init__(self, dim: int = 2, latent: int = 2, hidden: int = 128, depth: int = 2,
                 decoder_std: float = 0.1) -> None:
        super().__init__()
        if min(dim, latent, hidden, depth) < 1 or decoder_std <= 0:
            raise ValueError(f"MLPVAE: dim, latent, hidden, depth and decoder_std must be positive, got "
                             f"{dim}, {latent}, {hidden}, {depth}, {decoder_std}")
        self.latent, self.decoder_std = latent, decoder_std
        self.encoder = _mlp(dim, hidden, depth, 2 * latent)
        self.decoder = _mlp(latent, hidden, depth, dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        mu, logvar = self.encode(x)
        return VAEOutput(self.decode(reparameterize(mu, logvar, generator)), mu, logvar)


def _mlp(inputs: int, hidden: int, depth: int, outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(inputs, hidden), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.SiLU()]
    layers.append(nn.Linear(hidden, outputs))
    return nn.Sequential(*layers)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) of each sample and latent dimension, (B, latent), in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def vae_loss(model: nn.Module, x: torch.Tensor, out: VAEOutput, kl_weight: float = 1.0) -> VAELoss:
    """Negative ELBO with a KL weight: reconstruction (BCE on logits for a Bernoulli decoder, Gaussian NLL with
    the model's fixed `decoder_std` up to a constant for a Gaussian one) plus `kl_weight` · KL."""
    kind = getattr(model, "decoder_kind", None)
    if kind == "bernoulli":
        recon = F.binary_cross_entropy_with_logits(out.decoded, x, reduction="none").flatten(1).sum(1)
    elif kind == "gaussian":
        recon = (0.5 * ((out.decoded - x) / model.decoder_std) ** 2).flatten(1).sum(1)
    else:
        raise ValueError(f"vae_loss: model.decoder_kind must be one of {DECODERS}, got {kind!r}")
    kl = kl_per_dim(out.mu, out.logvar)
    recon_mean, kl_mean = recon.mean(), kl.sum(1).mean()
    return VAELoss(loss=recon_mean + kl_weight * kl_mean, recon=recon_mean, kl=kl_mean, kl_per_dim=kl.mean(0))


def annealed_kl_weight(epoch_progress: float, warmup_epochs: float, final_weight: float = 1.0) -> float:
    """Linear KL annealing: the weight rises from 0 to `final_weight` over the first `warmup_epochs` epochs
    (`epoch_progress` counts epochs, fractions allowed); no warm-up gives `final_weight` from the start."""
    if warmup_epochs <= 0:
        return final_weight
    return final_weight * min(1.0, max(0.0, epoch_progress) / warmup_epochs)

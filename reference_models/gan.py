"""Compact reference GANs: MLP generator and discriminator (vectors, 2D points, flattened images), optionally
label-conditioned; DCGAN for 28×28 images; the losses (BCE with smoothed real labels, WGAN-GP), the R1 penalty
and PacGAN packing.

The MLP GAN follows the classic MNIST recipe: z of size 100, LeakyReLU, Tanh output on data scaled to [−1, 1],
a discriminator with dropout trained by BCE with real labels smoothed to 0.9, and the generator updated twice per
discriminator update (the loop lives in `gendiag.recipes.gan`). DCGAN follows Radford et al.: transposed
convolutions, batch norm, weights from N(0, 0.02), Adam 2e-4 with β1 = 0.5. Discriminators output logits (or, for
WGAN, critic values); `pack` > 1 makes a PacGAN discriminator that judges `pack` samples jointly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

LOSSES = ("bce", "wgan-gp")


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """PacGAN packing: (B, ...) → (B / pack, pack · ...) joining `pack` consecutive samples along features (vectors)
    or channels (images). B must be a multiple of `pack`."""
    if pack < 1:
        raise ValueError(f"pack_samples: pack must be >= 1, got {pack}")
    if x.shape[0] % pack:
        raise ValueError(f"pack_samples: batch of {x.shape[0]} is not a multiple of pack={pack}")
    if pack == 1:
        return x
    groups = x.shape[0] // pack
    if x.dim() == 2:
        return x.reshape(groups, pack * x.shape[1])
    return x.reshape(groups, pack * x.shape[1], *x.shape[2:])


def _maybe_sn(layer: nn.Module, spectral: bool) -> nn.Module:
    return _spectral_norm(layer) if spectral else layer


class MLPGenerator(nn.Module):
    """z (B, z_dim) [+ labels (B,)] → x (B, out_dim): Linear–LeakyReLU(0.2) blocks (or ReLU, PacGAN's 2D generator)
    whose widths double from `hidden` (the MNIST recipe's 256-512-1024), then Tanh (data in [−1, 1]) or a linear
    output (2D points)."""

    def __init__(self, z_dim: int = 100, out_dim: int = 784, hidden: int = 256, depth: int = 3,
                 widen: bool = True, output: str = "tanh", n_classes: int = 0, batch_norm: bool = False,
                 activation: str = "leaky_relu") -> None:
        super().__init__()
        if output not in ("tanh", "linear"):
            raise ValueError(f"MLPGenerator: output must be 'tanh' or 'linear', got {output!r}")
        if activation not in ("leaky_relu", "relu"):
            raise ValueError(f"MLPGenerator: activation must be 'leaky_relu' or 'relu', got {activation!r}")
        if min(z_dim, out_dim, hidden, depth) < 1:
            raise ValueError(f"MLPGenerator: z_dim, out_dim, hidden, depth must be positive, got "
                             f"{z_dim}, {out_dim}, {hidden}, {depth}")
        self.z_dim, self.n_classes = z_dim, n_classes
        self.label_embedding = nn.Embedding(n_classes, n_classes) if n_classes else None
        widths = [hidden * (2 ** i if widen else 1) for i in range(depth)]
        layers: list[nn.Module] = []
        previous = z_dim + n_classes
        for width in widths:
            layers.append(nn.Linear(previous, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.LeakyReLU(0.2) if activation == "leaky_relu" else nn.ReLU())
            previous = width
        layers.append(nn.Linear(previous, out_dim))
        if output == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(_with_labels(z, labels, self.label_embedding))


class MLPDiscriminator(nn.Module):
    """x (B, in_dim) [+ labels] → one logit or critic value per (packed) sample: Linear–LeakyReLU(0.2)–Dropout
    blocks whose widths halve from `hidden` (the MNIST recipe's 1024-512-256). `pack` > 1 takes `pack` samples
    joined by `pack_samples`; the first `pack_after` blocks (`per_sample`, shared weights) see each sample on its
    own before the join (0: PacGAN joins the raw inputs). `spectral_norm` wraps every linear layer."""

    def __init__(self, in_dim: int = 784, hidden: int = 1024, depth: int = 3, narrow: bool = True,
                 dropout: float = 0.3, n_classes: int = 0, pack: int = 1, spectral_norm: bool = False,
                 pack_after: int = 0) -> None:
        super().__init__()
        if min(in_dim, hidden, depth, pack) < 1:
            raise ValueError(f"MLPDiscriminator: in_dim, hidden, depth, pack must be positive, got "
                             f"{in_dim}, {hidden}, {depth}, {pack}")
        if not 0 <= pack_after <= depth:
            raise ValueError(f"MLPDiscriminator: pack_after must be in 0..depth={depth}, got {pack_after}")
        if n_classes and pack > 1:
            raise ValueError("MLPDiscriminator: packing with label conditioning is not supported (pack must be 1)")
        self.pack, self.n_classes = pack, n_classes
        self.label_embedding = nn.Embedding(n_classes, n_classes) if n_classes else None
        widths = [max(1, hidden // (2 ** i if narrow else 1)) for i in range(depth)]
        blocks: list[list[nn.Module]] = []
        previous = in_dim
        for index, width in enumerate(widths):
            if index == pack_after:
                previous = previous * pack + n_classes
            blocks.append([_maybe_sn(nn.Linear(previous, width), spectral_norm), nn.LeakyReLU(0.2)]
                          + ([nn.Dropout(dropout)] if dropout > 0 else []))
            previous = width
        if pack_after == depth:
            previous = previous * pack + n_classes
        self.per_sample = nn.Sequential(*(layer for block in blocks[:pack_after] for layer in block))
        self.net = nn.Sequential(*(layer for block in blocks[pack_after:] for layer in block),
                                 _maybe_sn(nn.Linear(previous, 1), spectral_norm))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = pack_samples(self.per_sample(x.flatten(1)), self.pack)
        return self.net(_with_labels(x, labels, self.label_embedding)).squeeze(1)


class DCGANGenerator(nn.Module):
    """z (B, z_dim) → image (B, channels, 28, 28) in [−1, 1]: a linear map to 4·width × 7 × 7, then two stride-2
    transposed convolutions (7 → 14 → 28) with batch norm and ReLU, Tanh at the end."""

    def __init__(self, z_dim: int = 100, width: int = 64, channels: int = 1) -> None:
        super().__init__()
        self.z_dim, self.n_classes = z_dim, 0
        self.project = nn.Sequential(nn.Linear(z_dim, 4 * width * 7 * 7, bias=False),
                                     nn.BatchNorm1d(4 * width * 7 * 7), nn.ReLU())
        self.width = width
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )
        dcgan_init(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.project(z).view(-1, 4 * self.width, 7, 7))


class DCGANDiscriminator(nn.Module):
    """image (B, channels, 28, 28) → one logit per (packed) sample: two stride-2 convolutions (28 → 14 → 7) with
    LeakyReLU(0.2) and batch norm on the second (left out for WGAN-GP, whose penalty is per sample, and under
    spectral norm), then a linear layer."""

    def __init__(self, width: int = 64, channels: int = 1, pack: int = 1, spectral_norm: bool = False,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.pack, self.n_classes = pack, 0
        norm: nn.Module = nn.BatchNorm2d(2 * width) if batch_norm and not spectral_norm else nn.Identity()
        self.net = nn.Sequential(
            _maybe_sn(nn.Conv2d(channels * pack, width, 4, stride=2, padding=1), spectral_norm), nn.LeakyReLU(0.2),
            _maybe_sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), spectral_norm), norm, nn.LeakyReLU(0.2),
            nn.Flatten(), _maybe_sn(nn.Linear(2 * width * 7 * 7, 1), spectral_norm),
        )
        dcgan_init(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(pack_samples(x, self.pack)).squeeze(1)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialization: conv and linear weights from N(0, 0.02), batch-norm scales from
    N(1, 0.02), biases zero."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def _with_labels(x: torch.Tensor, labels: torch.Tensor | None, embedding: nn.Embedding | None) -> torch.Tensor:
    if embedding is None:
        return x
    if labels is None:
        raise ValueError("a conditional GAN network needs labels (B,) with its input")
    return torch.cat([x, embedding(labels)], dim=1)


def discriminator_loss(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """The discriminator's loss from its outputs on real and fake batches: BCE on logits with real targets
    `real_label` (0.9 = one-sided label smoothing), or the WGAN critic loss E[D(fake)] − E[D(real)]."""
    if loss == "bce":
        return (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_label))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    if loss == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"discriminator_loss: loss must be one of {LOSSES}, got {loss!r}")


def generator_loss(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss: non-saturating BCE (−log D(G(z))) or the WGAN loss −E[D(G(z))]."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    if loss == "wgan-gp":
        return -d_fake.mean()
    raise ValueError(f"generator_loss: loss must be one of {LOSSES}, got {loss!r}")


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP's penalty E[(‖∇D(x̂)‖ − 1)²] at x̂ on lines between real and fake samples (one mixing weight per
    packed group, so that a packed critic sees consistent inputs); multiply by λ = 10."""
    pack = getattr(critic, "pack", 1)
    weight = torch.rand(real.shape[0] // pack, generator=generator).repeat_interleave(pack)
    weight = weight.view(-1, *([1] * (real.dim() - 1))).to(real)
    mixed = (weight * real.detach() + (1 - weight) * fake.detach()).requires_grad_(True)
    scores = critic(mixed, labels)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    grad = pack_samples(grad.flatten(1), pack)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor, pack: int = 1) -> torch.Tensor:
    """Mescheder et al.'s R1 penalty E[‖∇D(x)‖²] on real samples: `d_real` are the discriminator's outputs on `real`,
    which must require grad; one squared gradient norm per packed group. Multiply by γ/2. It keeps D from turning
    steep on the data, where a saturated D leaves the generator no useful gradient."""
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return pack_samples(grad.flatten(1), pack).pow(2).sum(dim=1).mean()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, `module`'s parameters take no gradient (each one's requires_grad is restored after): the
    generator's step needs only the discriminator's gradient with respect to its input, so D's weight gradients
    are neither computed nor added to D's `.grad`, which keeps holding what D's own step left there."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for param in trainable:
        param.requires_grad_(False)
    try:
        yield module
    finally:
        for param in trainable:
            param.requires_grad_(True)


def grad_norm(module: nn.Module) -> float:
    """The L2 norm of all of `module`'s parameter gradients (0 where none are set); read right after backward."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))) if grads else 0.0

"""Every figure of the samples-against-data, mode-collapse, GAN-balance, memorization, VAE-latent and
autoregressive probes comes with its one-line caption in the report (issue 24), on loops written as a user writes
them: a small GAN on a ring of Gaussians with its own held-out set, a VAE's encoder read every few steps, and a
sequence model that reports its loss per position."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

import gendiag

RING = torch.stack([torch.tensor([math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)]) for k in range(8)])


def ring(n: int) -> torch.Tensor:
    return RING[torch.randint(0, 8, (n,))] + 0.05 * torch.randn(n, 2)


def captions_of(run_dir: Path) -> dict[str, str]:
    """figure path -> the caption line right under it in report.md."""
    text = (run_dir / "report.md").read_text(encoding="utf-8")
    return dict(re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)\n\n\*([^*\n]+)\*", text))


def gan_run(run_dir: Path) -> None:
    torch.manual_seed(0)
    gen = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    disc = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    held_out = ring(256)
    with gendiag.Monitor(run_dir, task="gan", probes=["gan-balance", "mode-collapse", "samples_vs_data",
                                                      "memorization"],
                         modes=RING, mode_std=0.05, reference=held_out, check_every=None, figures="all") as mon:
        for step in range(1, 41):
            real = ring(128)
            mon.observe_data(real)
            fake = gen(torch.randn(128, 4))
            d_real, d_fake = disc(real), disc(fake.detach())
            loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = bce(disc(fake), torch.ones_like(d_fake))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            mon.step(step, loss_d=loss_d.item(), loss_g=loss_g.item(), d_real=torch.sigmoid(d_real).detach(),
                     d_fake=torch.sigmoid(d_fake).detach(), d_output="prob")
            if step % 20 == 0:
                with torch.no_grad():
                    mon.observe_samples(gen(torch.randn(512, 4)))


def test_gan_figures_have_captions(tmp_path: Path) -> None:
    gan_run(tmp_path / "gan")
    captions = captions_of(tmp_path / "gan")
    for figure in ("gan_balance", "mode_collapse", "samples_vs_data", "memorization"):
        assert captions.get(f"figures/{figure}.png"), (figure, captions)
    page = (tmp_path / "gan" / "report.html").read_text(encoding="utf-8")
    assert page.count("<img ") == page.count("<figcaption>")


def test_vae_and_autoregressive_figures_have_captions(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = torch.nn.Linear(6, 8)  # the user's encoder head: mean and log-variance of a 4-D latent
    with gendiag.Monitor(tmp_path / "vae", task="vae", probes=["vae-health"], check_every=None) as mon:
        for step in range(1, 31):
            mon.step(step, 1.0 / step)
            if step % 10 == 0:
                with torch.no_grad():
                    mu, logvar = encoder(torch.randn(256, 6)).chunk(2, dim=1)
                mon.observe_latents(mu, logvar)
    assert captions_of(tmp_path / "vae").get("figures/vae_latents.png")
    with gendiag.Monitor(tmp_path / "ar", task="autoregressive", probes=["autoregressive"],
                         check_every=None) as mon:
        for step in range(1, 41):
            per_position = 2.0 / step + 0.1 * torch.rand(32, 16)  # nats, (batch, positions)
            mon.step(step, per_position.mean(), per_position_loss=per_position)
    assert captions_of(tmp_path / "ar").get("figures/autoregressive_loss_by_position.png")

"""Issue 27, "causes named, not symptoms": VAE faults named by their cause, on a VAE loop written as a user would
write it (their own bars data helper, a VAE module returning (recon, mu, logvar), the decoder watched, samples
decoded from the prior; only the public Monitor API).

- `vae-decoder-output-squashed`: a decoder ending in a Sigmoid whose output goes through torch.sigmoid again.
- `bce-target-out-of-range`: data normalised to [-1, 1] given as targets to a binary cross-entropy with logits.

Each fires on its bug and stays silent on the healthy loop over three seeds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gendiag

LATENT = 4


def bars(n: int, gen: torch.Generator) -> torch.Tensor:
    """8×8 binary images, each one lit row or column, flattened: the user's toy data."""
    images = torch.zeros(n, 8, 8)
    where = torch.randint(0, 8, (n,), generator=gen)
    rows = torch.rand(n, generator=gen) < 0.5
    images[rows.nonzero()[:, 0], where[rows], :] = 1
    images[(~rows).nonzero()[:, 0], :, where[~rows]] = 1
    return images.reshape(n, 64)


class VAE(nn.Module):
    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out
        self.encoder = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2 * LATENT))
        layers = [nn.Linear(LATENT, 64), nn.ReLU(), nn.Linear(64, 64)]
        if out in ("sigmoid", "sigmoid-twice"):
            layers.append(nn.Sigmoid())
        elif out == "tanh":
            layers.append(nn.Tanh())
        self.decoder = nn.Sequential(*layers)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        return torch.sigmoid(out) if self.out == "sigmoid-twice" else out

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return self.decode(z), mu, logvar


def train_vae(run_dir, seed: int, *, out: str = "sigmoid", scale: str = "unit", steps: int = 300):
    """`out`: the decoder's end ("sigmoid", "sigmoid-twice", "logits" with BCE-with-logits, "tanh" with MSE);
    `scale`: the data as is ("unit", in [0, 1]) or normalised to [-1, 1] ("symmetric")."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vae = VAE(out)
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="vae", probes=["vae_output", "vae-health"], check_every=None)
    mon.watch(vae.decoder, name="decoder", t_arg=None)
    for step in range(steps):
        x = bars(128, gen)
        if scale == "symmetric":
            x = x * 2 - 1
        mon.observe_data(x)
        recon, mu, logvar = vae(x)
        if out == "logits":
            rec = F.binary_cross_entropy_with_logits(recon, x, reduction="sum") / len(x)
        elif out == "tanh":
            rec = F.mse_loss(recon, x, reduction="sum") / len(x)
        else:
            rec = F.binary_cross_entropy(recon, x, reduction="sum") / len(x)
        kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum() / len(x)
        loss = rec + kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.observe_latents(mu.detach(), logvar.detach())
        mon.step(step, loss, recon=rec.item(), kl=kl.item())
    with torch.no_grad(), mon.sampling():
        samples = vae.decode(torch.randn(256, LATENT, generator=gen))
        if out == "logits":
            samples = torch.sigmoid(samples)
    mon.observe_samples(samples)
    return {f.code: f for f in mon.finish().findings}


CAUSES = {"vae-decoder-output-squashed", "bce-target-out-of-range"}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("out, scale", [("sigmoid", "unit"), ("logits", "unit"), ("tanh", "symmetric")])
def test_healthy_vaes_name_neither_cause(tmp_path, seed, out, scale) -> None:
    found = train_vae(tmp_path / "run", seed, out=out, scale=scale, steps=150)
    assert not set(found) & CAUSES, found


def test_a_sigmoid_applied_twice_is_named(tmp_path) -> None:
    found = train_vae(tmp_path / "run", 0, out="sigmoid-twice", steps=150)
    finding = found["vae-decoder-output-squashed"]
    assert finding.severity == "critical"
    assert finding.evidence["output_low"] >= 0.5 and finding.evidence["output_high"] <= 0.7311
    assert finding.evidence["data_share_outside"] == 1.0


def test_bce_targets_outside_unit_range_are_named(tmp_path) -> None:
    found = train_vae(tmp_path / "run", 0, out="logits", scale="symmetric", steps=150)
    finding = found["bce-target-out-of-range"]
    assert finding.severity == "critical"
    assert finding.evidence["data_low"] == -1.0 and finding.evidence["data_share_outside"] > 0.5
    assert finding.evidence["lowest"]["recon"][0] < 0 and finding.evidence["samples_range"][0] >= 0

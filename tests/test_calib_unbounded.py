"""`loss-unbounded-below` on a VAE in the calibration's shape (issue 25): the KL subtracted makes the loss plunge to
about -1e20 within a few dozen steps and then swing there, neither monotone nor speeding up. Named with the KL as
the term without a floor; the same loop with the KL added stays silent over three seeds.

The loop is written as a user would write it: 4 blobs lifted to 8-D by a fixed random map, an encoder whose output
is split into (mu, logvar), a Gaussian decoder, the loss assembled by hand, latents observed every tenth step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gendiag

STEPS = 200


def lifted_blobs(n: int, generator: torch.Generator, lift: torch.Tensor) -> torch.Tensor:
    corners = torch.tensor([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])
    which = torch.randint(0, 4, (n,), generator=generator)
    return (corners[which] + 0.3 * torch.randn(n, 2, generator=generator)) @ lift


def train_vae(tmp_path, seed: int, kl_weight: float, report_terms: bool) -> list[gendiag.Finding]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    lift = torch.randn(2, 8, generator=torch.Generator().manual_seed(1000))
    encoder = nn.Sequential(nn.Linear(8, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 8))
    decoder = nn.Sequential(nn.Linear(4, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 8))
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=2e-3)
    mon = gendiag.Monitor(tmp_path / f"vae_{seed}_{kl_weight}_{report_terms}", task="vae",
                          probes=["loss", "vae-health", "samples_vs_data"])
    mon.watch(decoder, "decoder", t_arg=None, optimizer=opt)
    for step in range(STEPS):
        x = lifted_blobs(128, generator, lift)
        mon.observe_data(x)
        mu, logvar = encoder(x).chunk(2, 1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator)
        recon = (decoder(z) - x).pow(2).sum(1).mean()
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
        loss = recon + kl_weight * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(step, loss=loss.item(), **({"recon": recon.item(), "kl": kl.item()} if report_terms else {}))
        if step % 10 == 0:
            mon.observe_latents(mu.detach(), logvar.detach())
    with torch.no_grad():
        mon.observe_samples(decoder(torch.randn(256, 4, generator=generator)))
    return mon.finish().findings


@pytest.mark.slow
@pytest.mark.parametrize("report_terms", [True, False])
def test_a_kl_subtracted_plunges_past_any_floor_and_is_named(tmp_path, report_terms: bool) -> None:
    findings = train_vae(tmp_path, 1, -1.0, report_terms)
    found = {f.code: f for f in findings}
    assert "loss-unbounded-below" in found and "loss-diverging" not in found
    finding = found["loss-unbounded-below"]
    assert finding.severity == "critical" and findings[0] is finding
    assert finding.evidence["past_any_floor"] and finding.evidence["last_window_median"] < -1e6
    assert "kl" in finding.evidence["term_without_floor"].lower()
    assert "instead of subtracting" in finding.suggestion
    for symptom in findings[1:]:
        if symptom.code in ("samples-unlike-data", "posterior-collapse"):
            assert "loss-unbounded-below" in symptom.consequence_of


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_same_vae_with_the_kl_added_has_a_floor(tmp_path, seed: int) -> None:
    codes = {f.code for f in train_vae(tmp_path, seed, 1.0, True)}
    assert "loss-unbounded-below" not in codes

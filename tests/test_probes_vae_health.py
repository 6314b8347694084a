"""The VAE health probe: activity statistics by hand, `posterior-collapse` on a VAE whose KL weight is far too
high, silence on a healthy one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import gendiag
from gendiag.quantities.vae_health import activity
from reference_models.vae import MLPVAE, vae_loss


def mlp_vae_loop(run_dir: Path, kl_weight: float, steps: int = 300) -> dict[str, dict]:
    """A 2D MLP VAE (latent 4) on two Gaussian blobs; observes the latents of a fixed batch every 50 steps."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    centers = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])

    def data(n: int) -> torch.Tensor:
        return centers[torch.randint(0, 2, (n,), generator=gen)] + 0.3 * torch.randn(n, 2, generator=gen)

    model = MLPVAE(dim=2, latent=4, hidden=32, decoder_std=0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    fixed = data(256)
    with gendiag.Monitor(run_dir, task="vae", probes=["vae-health"], strict=True) as mon:
        for step in range(1, steps + 1):
            x = data(128)
            terms = vae_loss(model, x, model(x, generator=gen), kl_weight=kl_weight)
            optimizer.zero_grad()
            terms.loss.backward()
            optimizer.step()
            mon.step(step, terms.loss.item(), recon=terms.recon.item(), kl=terms.kl.item())
            if step % 50 == 0:
                with torch.no_grad():
                    mon.observe_latents(*model.encode(fixed))
    return {f["code"]: f for f in json.loads((run_dir / "findings.json").read_text())["findings"]}


def test_activity_by_hand() -> None:
    mu = torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, 0.0], [np.log(2.0), 0.0]])
    variance, kl = activity(mu, logvar)
    np.testing.assert_allclose(variance, [0.0, 1.0])
    # KL per sample 0.5 (mu^2 + sigma^2 - 1 - log sigma^2): dim 0: 0, 0, 0.5 (1 - log 2); dim 1: 0.5, 0.5, 0
    np.testing.assert_allclose(kl, [0.5 * (1 - np.log(2.0)) / 3, 1.0 / 3], rtol=1e-12)


def test_posterior_collapse_fires_when_the_kl_weight_is_far_too_high(tmp_path: Path) -> None:
    finding = mlp_vae_loop(tmp_path, kl_weight=200.0)["posterior-collapse"]
    evidence = finding["evidence"]
    assert evidence["active_units"] == 0 and evidence["latent_dims"] == 4
    assert len(evidence["kl_per_dim"]) == 4 and evidence["kl_total"] < 0.1
    assert finding["severity"] == "critical" and (tmp_path / finding["figure"]).is_file()


def test_healthy_vae_is_silent(tmp_path: Path) -> None:
    findings = mlp_vae_loop(tmp_path, kl_weight=1.0)
    assert "posterior-collapse" not in findings
    state = json.loads((tmp_path / "probe_data.json").read_text())["vae-health"]
    assert state["active_units"] >= 1 and set(state["active_by_step"]) == {"50", "100", "150", "200", "250", "300"}


def test_collapse_names_the_step_since_which_it_held(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    with gendiag.Monitor(tmp_path, task="vae", probes=["vae-health"], strict=True) as mon:
        for step, spread in ((10, 1.0), (20, 1.0), (30, 0.01), (40, 0.01)):
            mon.step(step, 1.0)
            mu = spread * torch.randn(128, 10, generator=gen)
            mon.observe_latents(mu[:64], torch.zeros(64, 10))
            mon.observe_latents(mu[64:], torch.zeros(64, 10))  # one step's batches are pooled
    finding = json.loads((tmp_path / "findings.json").read_text())["findings"][0]
    assert finding["code"] == "posterior-collapse"
    assert finding["evidence"]["since_step"] == 30 and finding["evidence"]["peak_active_units"] == 10
    state = json.loads((tmp_path / "probe_data.json").read_text())["vae-health"]
    assert state["active_by_step"]["20"] == 10 and state["active_units"] == 0


def test_vanished_kl_fires_although_a_few_units_pass_the_activity_threshold(tmp_path: Path) -> None:
    # 4 of 20 units barely active (variance of the means ~0.012): more than a tenth, but ~0.0006 nats per dim.
    mu = torch.zeros(512, 20)
    mu[:, :4] = 0.11 * torch.randn(512, 4, generator=torch.Generator().manual_seed(1))
    with gendiag.Monitor(tmp_path, task="vae", probes=["vae-health"], strict=True) as mon:
        mon.observe_latents(mu, torch.zeros(512, 20), step=5)
    finding = json.loads((tmp_path / "findings.json").read_text())["findings"][0]
    assert finding["code"] == "posterior-collapse" and finding["severity"] == "critical"
    assert finding["evidence"]["active_units"] == 4 and finding["evidence"]["kl_total"] < 0.2


def test_mismatched_latent_sizes_are_skipped_and_listed(tmp_path: Path) -> None:
    """A latent batch of another size than the first is a value the run observed, not a reason to stop it."""
    with gendiag.Monitor(tmp_path, task="vae", probes=["vae-health", "observed-values"], strict=True) as mon:
        mon.observe_latents(torch.zeros(4, 3), torch.zeros(4, 3))
        mon.observe_latents(torch.zeros(4, 5), torch.zeros(4, 5))
    found = json.loads((tmp_path / "findings.json").read_text())["findings"]
    skipped = [f for f in found if f["code"] == "batch-skipped"]
    assert len(skipped) == 1 and skipped[0]["evidence"]["latents"]["count"] == 1
    assert "rows of shape (5,), unlike the first batch's (3,)" in skipped[0]["message"]

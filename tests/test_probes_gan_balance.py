"""The D/G balance probe: its chart and figure, `gan-d-dominates` on a loop whose discriminator is far too strong,
`gan-oscillation` on the Dirac GAN under simultaneous gradient steps, and silence on a healthy small GAN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import gendiag
from reference_models.gan import discriminator_loss, generator_loss, grad_norm


def findings_by_code(run_dir: Path) -> dict[str, dict]:
    return {f["code"]: f for f in json.loads((run_dir / "findings.json").read_text())["findings"]}


def small_gan_loop(run_dir: Path, steps: int, lr_g: float, lr_d: float, d_steps: int, d_hidden: int,
                   d_output: str = "logit") -> dict[str, dict]:
    """A 1D GAN on N(1.5, 0.3²) with non-saturating BCE, real labels 0.9; returns the findings by code."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    g = nn.Sequential(nn.Linear(4, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    d = nn.Sequential(nn.Linear(1, d_hidden), nn.LeakyReLU(0.2), nn.Linear(d_hidden, d_hidden), nn.LeakyReLU(0.2),
                      nn.Linear(d_hidden, 1))
    opt_g = torch.optim.Adam(g.parameters(), lr=lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr_d, betas=(0.5, 0.999))
    with gendiag.Monitor(run_dir, task="gan", probes=["gan-balance"], strict=True) as mon:
        for step in range(1, steps + 1):
            for _ in range(d_steps):
                real = 1.5 + 0.3 * torch.randn(64, 1, generator=gen)
                fake = g(torch.randn(64, 4, generator=gen)).detach()
                d_real, d_fake = d(real).squeeze(1), d(fake).squeeze(1)
                loss_d = discriminator_loss("bce", d_real, d_fake, real_label=0.9)
                opt_d.zero_grad()
                loss_d.backward()
                norm_d = grad_norm(d)
                opt_d.step()
            loss_g = generator_loss("bce", d(g(torch.randn(64, 4, generator=gen))).squeeze(1))
            opt_g.zero_grad()
            loss_g.backward()
            norm_g = grad_norm(g)
            opt_g.step()
            shown_real, shown_fake = (d_real, d_fake) if d_output == "logit" else (d_real.sigmoid(), d_fake.sigmoid())
            mon.step(step, loss_d=loss_d.item(), loss_g=loss_g.item(), d_real=shown_real.detach(), d_fake=shown_fake.detach(),
                     d_output=d_output, grad_norm_d=norm_d, grad_norm_g=norm_g)
    return findings_by_code(run_dir)


def dirac_gan_loop(run_dir: Path, steps: int, simultaneous: bool, lr: float) -> dict[str, dict]:
    """Mescheder et al.'s Dirac GAN with the WGAN loss: data at 0, G = θ, critic D(x) = ψ·x, losses ±ψθ.
    Simultaneous gradient steps spiral outwards (radius × √(1 + lr²) per step); alternating steps stay bounded."""
    theta, psi = torch.tensor(1.0), torch.tensor(1.0)
    real = torch.zeros(8)
    with gendiag.Monitor(run_dir, task="gan", probes=["gan-balance"], strict=True) as mon:
        for step in range(1, steps + 1):
            d_real, d_fake = psi * real, psi * theta.expand(8)
            loss_d = discriminator_loss("wgan-gp", d_real, d_fake)
            loss_g = generator_loss("wgan-gp", d_fake)
            new_psi = psi - lr * theta  # d loss_d / d psi = theta
            theta = theta + lr * (psi if simultaneous else new_psi)  # d loss_g / d theta = -psi
            psi = new_psi
            mon.step(step, loss_d=loss_d.item(), loss_g=loss_g.item(), d_real=d_real, d_fake=d_fake,
                     d_output="critic")
    return findings_by_code(run_dir)


def test_d_dominates_fires_on_a_far_too_strong_discriminator(tmp_path: Path) -> None:
    findings = small_gan_loop(tmp_path, steps=150, lr_g=1e-5, lr_d=3e-3, d_steps=3, d_hidden=64)
    finding = findings["gan-d-dominates"]
    evidence = finding["evidence"]
    assert evidence["median_d_fake"] < 0.05 and evidence["median_d_accuracy"] > 0.95  # well past the 0.1, 0.9 bars
    assert evidence["share_of_run"] >= 0.2 and evidence["to_step"] == 150
    assert finding["severity"] == "critical" and finding["figure"] == "figures/gan_balance.png"
    assert (tmp_path / finding["figure"]).is_file()


def test_healthy_small_gan_is_silent(tmp_path: Path) -> None:
    findings = small_gan_loop(tmp_path, steps=300, lr_g=2e-3, lr_d=1e-3, d_steps=1, d_hidden=16, d_output="prob")
    assert "gan-d-dominates" not in findings and "gan-oscillation" not in findings
    data = json.loads((tmp_path / "probe_data.json").read_text())["gan-balance"]
    assert data["d_output"] == "prob" and 0.1 < data["final_d_fake"] < 0.9


def test_oscillation_fires_on_simultaneous_dirac_gan(tmp_path: Path) -> None:
    findings = dirac_gan_loop(tmp_path, steps=600, simultaneous=True, lr=0.05)
    finding = findings["gan-oscillation"]
    assert finding["evidence"]["loss_d_growth"] >= 2 and finding["evidence"]["loss_g_growth"] >= 2
    swings = finding["evidence"]["loss_g_swing_by_segment"]
    assert swings == sorted(swings)


def test_oscillation_silent_on_bounded_alternating_dirac_gan(tmp_path: Path) -> None:
    assert "gan-oscillation" not in dirac_gan_loop(tmp_path, steps=600, simultaneous=False, lr=0.05)


def test_balance_chart_and_scalars(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path, task="gan", probes=["gan-balance"], strict=True) as mon:
        for step in range(1, 11):
            mon.step(step, loss_d=1.0, loss_g=0.7, d_real=torch.full((4,), 2.0), d_fake=torch.full((4,), -2.0),
                     d_output="logit", grad_norm_d=0.5, grad_norm_g=0.2)
        layout = mon.ctx.layout["GAN balance"]
    combined = next(tags for title, (_, tags) in layout.items() if title.startswith("D/G balance"))
    assert {"gan/d_real", "gan/d_fake", "train/loss_d", "train/loss_g", "train/grad_norm_d",
            "train/grad_norm_g"} <= set(combined)
    metrics = (tmp_path / "metrics.csv").read_text()
    assert "gan/d_accuracy" in metrics and "train/grad_norm_g" in metrics
    data = json.loads((tmp_path / "probe_data.json").read_text())["gan-balance"]
    assert data["final_d_real"] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())
    assert data["final_d_accuracy"] == 1.0


def test_critic_output_never_reads_as_d_dominates(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path, task="gan", probes=["gan-balance"], strict=True) as mon:
        for step in range(1, 101):
            mon.step(step, loss_d=-5.0, loss_g=5.0, d_real=torch.full((4,), 5.0), d_fake=torch.full((4,), -5.0),
                     d_output="critic")
    assert findings_by_code(tmp_path) == {}


def test_unknown_d_output_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="d_output must be one of"):
        with gendiag.Monitor(tmp_path, task="gan", probes=["gan-balance"], strict=True) as mon:
            mon.step(1, loss_d=1.0, loss_g=1.0, d_real=torch.ones(4), d_fake=torch.zeros(4), d_output="probability")

"""Causes named, not symptoms (issue 27): `lr-decayed-to-zero` and `weight-decay-dominates` on a 2-D DDPM loop
written as a user writes one (a DataLoader over its own two-spirals helper, `enumerate(loader)` batch indices with
`epoch=`, a scheduler), and `gan-g-objective-inverted` on a GAN loop with BCE-with-logits or a hinge critic. Each
bug on is named; the same loop healthy is silent over three seeds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gendiag

EPOCHS = 20
BATCHES = 30


def two_spirals(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    radius = torch.rand(n, generator=gen) * 3 * math.pi
    arm = torch.randint(0, 2, (n,), generator=gen) * 2 - 1
    points = torch.stack([radius * torch.cos(radius), radius * torch.sin(radius)], dim=1) * arm[:, None] / 5
    return points + 0.05 * torch.randn(n, 2, generator=gen)


class Denoiser(nn.Module):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.mlp = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x, (t.float() / self.steps)[:, None]], dim=1))


def train_ddpm(run_dir, seed: int, bug: str | None = None) -> list:
    """bug: "scheduler-per-batch" (a PolynomialLR sized in epochs, stepped every batch), "gamma-per-batch" (an
    ExponentialLR meant per epoch, stepped every batch; its lr handed to mon.step, no optimizer watched),
    "weight-decay" (Adam's L2 weight_decay=1.0, AdamW's scale), or None (AdamW with weight_decay=0.01 and a
    PolynomialLR stepped per epoch)."""
    torch.manual_seed(seed)
    T = 100
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.05, T), dim=0)
    loader = DataLoader(TensorDataset(two_spirals(BATCHES * 128, seed)), batch_size=128, shuffle=True)
    model = Denoiser(T)
    if bug == "weight-decay":
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1.0)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    if bug == "gamma-per-batch":
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.98)
    else:
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=EPOCHS, power=1.0)
    per_batch = bug in ("scheduler-per-batch", "gamma-per-batch")
    mon = gendiag.Monitor(run_dir, task="diffusion", probes=["optimizer", "loss"], strict=True,
                          schedule=alphas_cumprod)
    mon.watch(model, optimizer=None if bug == "gamma-per-batch" else optimizer)
    for epoch in range(EPOCHS):
        for i, (x0,) in enumerate(loader):
            t = torch.randint(0, T, (x0.shape[0],))
            noise = torch.randn_like(x0)
            a = alphas_cumprod[t][:, None]
            loss = nn.functional.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t), noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if per_batch:
                scheduler.step()
            mon.step(i, loss=loss, epoch=epoch, lr=scheduler.get_last_lr()[0])
        if not per_batch:
            scheduler.step()
    return mon.finish().findings


def loud(findings: list) -> set[str]:
    return {f.code for f in findings if f.severity in ("warning", "critical")}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_schedule_and_weight_decay_are_silent(tmp_path, seed: int) -> None:
    assert not loud(train_ddpm(tmp_path, seed)) & {"lr-decayed-to-zero", "weight-decay-dominates"}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_scheduler_sized_in_epochs_stepped_every_batch_is_named(tmp_path, seed: int) -> None:
    found = [f for f in train_ddpm(tmp_path, seed, "scheduler-per-batch") if f.code == "lr-decayed-to-zero"]
    assert found and found[0].severity == "critical"
    evidence = found[0].evidence
    assert evidence["first_below_step"] < 2 * EPOCHS  # PolynomialLR reaches 0 after total_iters=EPOCHS steps
    assert evidence["share_of_run_left"] > 0.9 and evidence["optimizer"] == "AdamW #1"


def test_a_decay_factor_applied_every_batch_is_named_from_the_lr_given_to_step(tmp_path) -> None:
    found = [f for f in train_ddpm(tmp_path, 0, "gamma-per-batch") if f.code == "lr-decayed-to-zero"]
    assert found and found[0].severity == "warning"
    evidence = found[0].evidence
    assert evidence["optimizer"] == "the lr given to mon.step"
    assert 300 < evidence["first_below_step"] < 400  # 0.98 ** 342 < 1e-3
    assert evidence["share_of_run_left"] == pytest.approx(1 - evidence["first_below_step"] / 599, abs=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_decay_stronger_than_the_loss_is_named(tmp_path, seed: int) -> None:
    found = [f for f in train_ddpm(tmp_path, seed, "weight-decay") if f.code == "weight-decay-dominates"]
    assert found
    evidence = found[0].evidence
    assert evidence["shrink"] > 0.5 and evidence["loss_improvement"] < 0.1 and evidence["weight_decay"] == 1.0


def eight_gaussians(n: int, gen: torch.Generator) -> torch.Tensor:
    which = torch.randint(0, 8, (n,), generator=gen).float()
    centres = torch.stack([torch.cos(which * math.pi / 4), torch.sin(which * math.pi / 4)], dim=1) * 2
    return centres + 0.05 * torch.randn(n, 2, generator=gen)


def train_gan(run_dir, seed: int, loss: str = "bce", inverted: bool = False, steps: int = 400) -> list:
    """loss: "bce" (D gives logits, BCE-with-logits) or "hinge" (a critic); inverted: G's loss takes the fake
    label (`bce(D(G(z)), zeros)`) or the critic's value with a plus sign."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    D = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    with gendiag.Monitor(run_dir, task="gan", probes=["gan-balance"], strict=True) as mon:
        for step in range(steps):
            real = eight_gaussians(128, gen)
            fake = G(torch.randn(128, 8, generator=gen))
            d_real, d_fake = D(real), D(fake.detach())
            if loss == "hinge":
                loss_d = torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()
            else:
                loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            rating = D(fake)
            if loss == "hinge":
                loss_g = rating.mean() if inverted else -rating.mean()
            else:
                loss_g = bce(rating, torch.zeros_like(rating) if inverted else torch.ones_like(rating))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            mon.step(step, loss_d=loss_d.item(), loss_g=loss_g.item(), d_real=d_real.detach(),
                     d_fake=d_fake.detach(), d_output="critic" if loss == "hinge" else "logit")
    return mon.finish().findings


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_a_generator_minimising_the_right_objective_is_silent(tmp_path, seed: int, loss: str) -> None:
    assert "gan-g-objective-inverted" not in {f.code for f in train_gan(tmp_path, seed, loss)}


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["bce", "hinge"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_generator_minimising_the_wrong_objective_is_named(tmp_path, seed: int, loss: str) -> None:
    findings = train_gan(tmp_path, seed, loss, inverted=True)
    found = [f for f in findings if f.code == "gan-g-objective-inverted"]
    assert found and found[0].severity == "critical"
    evidence = found[0].evidence
    assert evidence["rank_correlation_of_changes"] >= 0.5
    if loss == "bce":  # G's loss falls while D's accuracy on fakes rises
        assert evidence["loss_g_last_quarter"] < evidence["loss_g_first_quarter"]
        assert evidence["d_fake_accuracy_last_quarter"] >= evidence["d_fake_accuracy_first_quarter"]
        assert evidence["d_fake_accuracy_last_quarter"] > 0.9


def test_changes_moving_together_in_the_healthy_direction_are_not_an_inverted_objective() -> None:
    """As on the dcgan_mnist case (400 steps): loss_g's and D(fake)'s step changes correlated +0.82 while G's loss
    fell (2.20 to 1.84) and D(fake) rose (0.13 to 0.18), which is G fooling D as it should."""
    import numpy as np
    import pandas as pd

    from gendiag.rules.gan_balance import g_objective_inverted

    steps = np.arange(400)
    wiggle = np.random.default_rng(0).normal(size=400)
    d_fake = np.linspace(0.13, 0.18, 400) + 0.02 * wiggle
    frame = pd.DataFrame({"step": steps, "d_fake": d_fake, "loss_g": np.linspace(2.2, 1.84, 400) + 0.3 * wiggle,
                          "d_fake_accuracy": np.ones(400)})
    assert g_objective_inverted(frame, "logit", None) is None
    inverted = frame.assign(d_fake=d_fake[::-1] - 0.02 * wiggle[::-1] + 0.02 * wiggle)
    assert g_objective_inverted(inverted, "logit", None).severity == "critical"

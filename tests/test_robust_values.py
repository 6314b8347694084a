"""A run never dies of the values it observes (issue 27 item 1): NaN or infinite samples, latents, data and network
outputs are evidence. Each loop here is written as a user would write it, with the public API only."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

import gendiag


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    """The user's data: points on a circle of radius 3."""
    angle = torch.rand(n, generator=generator) * 2 * torch.pi
    return 3 * torch.stack([angle.cos(), angle.sin()], dim=1) + 0.05 * torch.randn(n, 2, generator=generator)


def gan_with_log_loss(run_dir: Path, lr: float, steps: int = 60, seed: int = 0) -> tuple[gendiag.Report, int | None]:
    """A GAN with a hand-written log loss on a Sigmoid D; at a large learning rate D saturates, log(0) turns the loss
    infinite and the weights NaN. The loop looks at 256 samples of a fixed z every 10 steps. Returns the report and
    the first step whose samples the loop itself saw NaN in."""
    torch.manual_seed(seed)
    data_rng = torch.Generator().manual_seed(seed)
    G = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
    D = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    opt_g = torch.optim.Adam(G.parameters(), lr=lr)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr)
    z_fixed = torch.randn(256, 4)
    first_nan = None
    with gendiag.Monitor(run_dir, task="gan") as mon:
        mon.watch(G, name="G", t_arg=None, optimizer=opt_g)
        mon.watch(D, name="D", t_arg=None, optimizer=opt_d)
        for it in range(steps):
            real = ring(128, data_rng)
            mon.observe_data(real)
            fake = G(torch.randn(128, 4))
            d_real, d_fake = D(real), D(fake.detach())
            loss_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = -torch.log(D(fake)).mean()
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            mon.step(it, (loss_d + loss_g).item(), loss_d=loss_d.item(), loss_g=loss_g.item(),
                     d_real=d_real.detach(), d_fake=d_fake.detach(), d_output="prob")
            if it % 10 == 9:
                with mon.sampling(), torch.no_grad():
                    samples = G(z_fixed)
                if first_nan is None and not bool(torch.isfinite(samples).all()):
                    first_nan = it
                mon.observe_samples(samples)
    return mon.finish(), first_nan


def test_a_gan_whose_log_loss_turns_nan_finishes_with_a_report_naming_the_step(tmp_path: Path) -> None:
    report, first_nan = gan_with_log_loss(tmp_path / "nan", lr=0.05)
    assert first_nan is not None, "the loop's own bug did not fire: the test no longer tests anything"
    found = {f.code: f for f in report.findings}
    samples = found["samples-nonfinite"]
    assert samples.severity == "critical" and samples.evidence["first_step"] == first_nan
    assert f"first at step {first_nan}" in samples.title and samples.evidence["share"] > 0.9
    assert "loss-nonfinite" in found and samples.consequence_of == ["loss-nonfinite"]
    assert "probe-failed" not in found
    saved = {f["code"] for f in json.loads((tmp_path / "nan" / "findings.json").read_text())["findings"]}
    assert "samples-nonfinite" in saved and "samples-nonfinite" in (tmp_path / "nan" / "report.md").read_text()


def test_the_same_gan_at_a_sane_learning_rate_raises_no_value_finding(tmp_path: Path) -> None:
    report, first_nan = gan_with_log_loss(tmp_path / "ok", lr=1e-3)
    assert first_nan is None
    codes = {f.code for f in report.findings}
    assert not codes & {"samples-nonfinite", "data-nonfinite", "outputs-nonfinite", "batch-skipped", "probe-failed"}

"""A run never dies of the values it observes (issue 27 item 1): NaN or infinite samples, latents, data and network
outputs are evidence. Each loop here is written as a user would write it, with the public API only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


@pytest.mark.slow
def test_a_gan_whose_log_loss_turns_nan_finishes_with_a_report_naming_the_step(tmp_path: Path) -> None:
    report, first_nan = gan_with_log_loss(tmp_path / "nan", lr=0.05)
    assert first_nan is not None, "the loop's own bug did not fire: the test no longer tests anything"
    found = {f.code: f for f in report.findings}
    samples = found["samples-nonfinite"]
    assert samples.severity == "critical" and samples.evidence["first_step"] == first_nan
    assert f"first observed at step {first_nan}" in samples.title and samples.evidence["share"] > 0.9
    assert "loss-nonfinite" in found and samples.consequence_of == ["loss-nonfinite"]
    assert "probe-failed" not in found
    saved = {f["code"] for f in json.loads((tmp_path / "nan" / "findings.json").read_text())["findings"]}
    assert "samples-nonfinite" in saved and "samples-nonfinite" in (tmp_path / "nan" / "report.md").read_text()


@pytest.mark.slow
def test_the_same_gan_at_a_sane_learning_rate_raises_no_value_finding(tmp_path: Path) -> None:
    report, first_nan = gan_with_log_loss(tmp_path / "ok", lr=1e-3)
    assert first_nan is None
    codes = {f.code for f in report.findings}
    assert not codes & {"samples-nonfinite", "data-nonfinite", "outputs-nonfinite", "batch-skipped", "probe-failed"}


@pytest.mark.slow
def test_a_flow_sampler_that_divides_by_zero_at_t_1_is_named_and_no_probe_fails(tmp_path: Path) -> None:
    """The network predicts the data point x1; the sampler turns that into a velocity (x1_hat - x) / (1 - t) and
    steps over torch.linspace(0, 1, 20), whose last time is 1: the samples come out infinite or NaN."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with gendiag.Monitor(tmp_path, task="flow", strict=True) as mon:
        mon.watch(net, call=lambda module, x, t: module(torch.cat([x, t[:, None]], 1)),
                  inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]))
        for step in range(80):
            x1, x0 = ring(128, gen), torch.randn(128, 2, generator=gen)
            mon.observe_data(x1)
            mon.observe_data(x0, role="source")
            t = torch.rand(128, generator=gen)
            xt = t[:, None] * x1 + (1 - t[:, None]) * x0
            loss = ((net(torch.cat([xt, t[:, None]], 1)) - x1) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(step, loss.item())
        with mon.sampling(), torch.no_grad():
            x = torch.randn(256, 2, generator=gen)
            times = torch.linspace(0, 1, 20)
            for t in times:
                x1_hat = net(torch.cat([x, t.expand(len(x), 1)], 1))
                x = x + (x1_hat - x) / (1 - t) / len(times)
        mon.observe_samples(x)
    report = mon.finish()
    found = {f.code: f for f in report.findings}
    assert found["samples-nonfinite"].severity == "critical" and found["samples-nonfinite"].evidence["first_step"] == 79
    assert "probe-failed" not in found and "data-nonfinite" not in found


def test_nan_rows_in_a_vae_data_set_are_named_with_their_step_and_the_latents_after_them(tmp_path: Path) -> None:
    """The user's data set has missing values (NaN) in a few rows from batch 30 on; the loss, the weights and then
    the posterior turn NaN. The run finishes; data-nonfinite names the step, the NaN latents are its consequence."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    encoder, decoder = nn.Linear(2, 4), nn.Linear(2, 2)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-2)
    with gendiag.Monitor(tmp_path, task="vae", strict=True) as mon:
        for step in range(60):
            x = ring(64, gen)
            if step >= 30:
                x[::16, 1] = float("nan")
            mon.observe_data(x)
            mu, logvar = encoder(x).chunk(2, dim=1)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            recon = ((decoder(z) - x) ** 2).sum(1).mean()
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
            opt.zero_grad()
            (recon + kl).backward()
            opt.step()
            mon.step(step, (recon + kl).item(), recon=recon.item(), kl=kl.item())
            mon.observe_latents(mu.detach(), logvar.detach())
    report = mon.finish()
    found = {f.code: f for f in report.findings}
    # observed before mon.step(30): the last step reported then was 29
    assert found["data-nonfinite"].evidence["first_step"] == 29 and "at step 29" in found["data-nonfinite"].title
    assert found["data-nonfinite"].evidence["places"]["data"]["nonfinite_rows"] == 30 * 4
    assert found["outputs-nonfinite"].consequence_of[0] == "data-nonfinite"
    assert "probe-failed" not in found


def test_identical_samples_are_judged_not_divided_by(tmp_path: Path) -> None:
    """A generator that ignores its noise gives one point 512 times: the sample probes judge it without failing."""
    gen = torch.Generator().manual_seed(3)
    G = nn.Sequential(nn.Linear(4, 2))
    with gendiag.Monitor(tmp_path, task="gan", strict=True) as mon:
        for step in range(5):
            mon.observe_data(ring(256, gen))
            mon.step(step, 1.0)
        with mon.sampling(), torch.no_grad():
            samples = G(torch.zeros(512, 4))
        mon.observe_samples(samples)
    codes = {f.code for f in mon.finish().findings}
    assert "samples-unlike-data" in codes and "samples-nonfinite" not in codes


def test_nan_outputs_of_sampling_calls_are_counted_without_observed_samples(tmp_path: Path) -> None:
    """A sampler whose step is far too large overflows; the network's outputs on its states turn NaN. The loop never
    calls observe_samples: the watched calls inside mon.sampling() are enough to name it."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4)

    class Velocity(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 2))

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(torch.cat([x, t[:, None]], 1))

    model = Velocity()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with gendiag.Monitor(tmp_path, task="flow", strict=True) as mon:
        mon.watch(model, optimizer=opt)
        for step in range(20):
            x1, x0 = ring(64, gen), torch.randn(64, 2, generator=gen)
            t = torch.rand(64, generator=gen)
            loss = ((model(t[:, None] * x1 + (1 - t[:, None]) * x0, t) - (x1 - x0)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(step, loss.item())
        with mon.sampling(), torch.no_grad():
            x = torch.randn(128, 2, generator=gen)
            for i in range(10):
                x = x + 1e38 * model(x, torch.full((128,), i / 10))
    found = {f.code: f for f in mon.finish().findings}
    samples = found["samples-nonfinite"]
    assert samples.severity == "critical" and "sampling outputs of 'model'" in samples.evidence["places"]
    assert samples.evidence["share"] > 0.1 and "probe-failed" not in found

"""Live checks change nothing the run ends with: on a user's DDPM loop, healthy (the schedule reaches noise) and
failing (a short linear schedule that leaves a third of the data at the last step), the findings at the end are
the same, word for word, with live checks every few steps as without any."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import gendiag


class EpsNet(torch.nn.Module):
    """The user's noise predictor: the point and a sinusoidal embedding of the integer step."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.net = torch.nn.Sequential(torch.nn.Linear(2 + 8, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        freqs = torch.arange(1, 5, dtype=torch.float32) * math.pi / self.steps
        angles = step.float()[:, None] * freqs
        return self.net(torch.cat([x, angles.sin(), angles.cos()], 1))


def ring(n: int, gen: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=gen) * 2 * math.pi
    return torch.stack([angle.cos(), angle.sin()], 1) * 2 + 0.1 * torch.randn(n, 2, generator=gen)


def run(run_dir: Path, diffusion_steps: int, check_every: int | None) -> list[dict]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    betas = torch.linspace(1e-4, 0.02, diffusion_steps)
    alpha_bar = torch.cumprod(1 - betas, 0)
    net = EpsNet(diffusion_steps)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    with gendiag.Monitor(run_dir, task="diffusion", schedule=alpha_bar, check_every=check_every, check_seconds=0,
                         announce=lambda line: None) as mon:
        mon.watch(net, optimizer=opt)
        for epoch in range(3):
            for i in range(80):
                x0 = ring(128, gen)
                k = torch.randint(0, diffusion_steps, (128,), generator=gen)
                noise = torch.randn(128, 2, generator=gen)
                a = alpha_bar[k][:, None]
                err = ((net(a.sqrt() * x0 + (1 - a).sqrt() * noise, k) - noise) ** 2).mean(1)
                opt.zero_grad()
                err.mean().backward()
                opt.step()
                if i == 0:
                    mon.observe_data(x0)
                    mon.observe_data(noise, role="source")
                mon.step(i, err.mean(), t=k, per_sample_loss=err.detach(), epoch=epoch)
        with mon.sampling(), torch.no_grad():
            x = torch.randn(400, 2, generator=gen)
            for k in reversed(range(diffusion_steps)):
                eps = net(x, torch.full((400,), k))
                x = (x - betas[k] / (1 - alpha_bar[k]).sqrt() * eps) / (1 - betas[k]).sqrt()
                if k:
                    x = x + betas[k].sqrt() * torch.randn(400, 2, generator=gen)
        mon.observe_samples(x)
    return [f.to_dict() for f in mon.finish().findings]


def at_end(findings: list[dict]) -> list[dict]:
    """The findings without the step only live checks can know."""
    assert all(f["last_step"] is None for f in findings)  # cleared ones are kept apart (Report.cleared)
    return [{k: v for k, v in f.items() if k != "first_step"} for f in findings]


@pytest.mark.slow
@pytest.mark.parametrize("diffusion_steps, failing", [(1000, False), (100, True)])
def test_findings_at_the_end_agree_with_live_checks_on_and_off(tmp_path: Path, diffusion_steps: int,
                                                               failing: bool) -> None:
    live = run(tmp_path / "live", diffusion_steps, check_every=5)
    quiet = run(tmp_path / "quiet", diffusion_steps, check_every=None)
    assert at_end(live) == at_end(quiet)
    codes = {f["code"] for f in quiet}
    assert ("schedule-not-reaching-noise" in codes) == failing
    assert all(f["first_step"] == 239 for f in quiet)  # no live check: every finding is known at the last step
    if failing:
        known = next(f for f in live if f["code"] == "schedule-not-reaching-noise")
        assert known["first_step"] == 5  # the schedule is known from the start: the first check sees it

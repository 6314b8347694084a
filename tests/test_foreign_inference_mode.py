"""A loop that samples under `torch.inference_mode()` (as denoising-diffusion-pytorch, diffusers pipelines and many
scripts do) instead of `torch.no_grad()`: the tensors the watched network is called with there are inference
tensors, which torch refuses to let anyone update in place outside inference mode. The probes' reservoirs and
buffers first made during such a call must still take rows afterwards, and the report compares the sampling
inputs with the training inputs as it does for a no_grad sampler."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

import gendiag


class Velocity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


def ring(n: int, gen: torch.Generator) -> torch.Tensor:
    angle = 2 * math.pi * torch.rand(n, generator=gen)
    return torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(n, 2, generator=gen)


def train_and_sample(run_dir: Path, no_grad: bool) -> dict:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = Velocity()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with gendiag.Monitor(run_dir, task="flow", probes=["inputs", "sampling_calls", "samples_vs_data"],
                         strict=True) as mon:
        mon.watch(model)
        for step in range(1, 151):
            x1 = ring(128, gen)
            x0 = torch.randn(128, 2, generator=gen)
            t = torch.rand(128, generator=gen)
            loss = (model((1 - t[:, None]) * x0 + t[:, None] * x1, t) - (x1 - x0)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.observe_data(x1)
            mon.observe_data(x0, role="source")
            mon.step(step, loss)
            if step % 50 == 0:  # a sampler run every 50 steps, between training steps
                with (torch.no_grad() if no_grad else torch.inference_mode()), mon.sampling():
                    x = torch.randn(256, 2, generator=gen)
                    for k in range(20):
                        x = x + model(x, torch.full((256,), k / 20)) / 20
                    mon.observe_samples(x)
    return json.loads((run_dir / "probe_data.json").read_text())


def test_a_sampler_under_inference_mode_is_recorded_as_one_under_no_grad(tmp_path) -> None:
    inference = train_and_sample(tmp_path / "inference_mode", no_grad=False)
    no_grad = train_and_sample(tmp_path / "no_grad", no_grad=True)
    findings = json.loads((tmp_path / "inference_mode" / "findings.json").read_text())["findings"]
    assert [f["code"] for f in findings if f["code"] == "probe-failed"] == []
    assert inference["inputs"] == no_grad["inputs"]
    assert inference["samples_vs_data"] == no_grad["samples_vs_data"]

"""Compiled models (issue 21): a network wrapped by `torch.compile` is watched as it is. The recording hook on the
wrapper sees the training and sampling calls, the gradients are read under the original parameter names, and the
probes that run the network (velocity, sampler) run the original module. On the CPU with `backend="eager"` (fast);
one real inductor run is marked slow."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

import gendiag


def eight_gaussians(n: int, generator: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=generator).float() * (2 * math.pi / 8)
    return 2 * torch.stack([k.cos(), k.sin()], 1) + 0.1 * torch.randn(n, 2, generator=generator)


class Field(nn.Module):
    """The user's velocity field, called as field(x, t) with t of shape (B,)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, t[:, None]], 1))


def compiled_flow_run(run_dir: Path, backend: str, steps: int) -> tuple[gendiag.Report, nn.Module]:
    generator = torch.Generator().manual_seed(3)
    field = Field()
    compiled = torch.compile(field, backend=backend)
    opt = torch.optim.Adam(field.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="flow", flush_every=50)
    assert mon.watch(compiled, optimizer=opt) is compiled
    for step in range(1, steps + 1):
        x1 = eight_gaussians(256, generator)
        x0 = torch.randn(x1.shape, generator=generator)
        t = torch.rand(256, generator=generator)
        mon.observe_data(x1)
        mon.observe_data(x0, role="source")
        per_sample = (compiled((1 - t[:, None]) * x0 + t[:, None] * x1, t) - (x1 - x0)).square().sum(1)
        loss = per_sample.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(step, loss, t=t, per_sample_loss=per_sample.detach())
    with torch.no_grad(), mon.sampling():
        x = torch.randn(512, 2, generator=generator)
        for i in range(20):
            x = x + compiled(x, torch.full((512,), i / 20)) / 20
    mon.observe_samples(x)
    return mon.finish(), field


def check_watched_through_the_wrapper(run_dir: Path, report: gendiag.Report, field: nn.Module) -> None:
    failed = [f"{f.code}: {f.message}" for f in report.findings if f.code in ("probe-failed", "probe-not-run")]
    assert failed == []
    state = json.loads((run_dir / "probe_data.json").read_text())
    assert state["gradients"]["tensors"] == len(list(field.parameters()))
    text = (run_dir / "report.md").read_text()
    assert "_orig_mod" not in text
    names = [name for name, _ in field.named_parameters()]
    metrics = (run_dir / "metrics.csv").read_text()
    assert f"grad/norm/model.{names[0]}" in metrics  # the original names, not model._orig_mod.body.0.weight
    calls = state["sampling_calls"]
    assert calls, "the sampling calls through the compiled wrapper were not recorded"


@pytest.mark.slow
def test_compiled_model_eager_backend(tmp_path: Path) -> None:
    report, field = compiled_flow_run(tmp_path / "run", backend="eager", steps=200)
    check_watched_through_the_wrapper(tmp_path / "run", report, field)
    loud = [f"{f.code}: {f.title}" for f in report.findings if f.severity in ("warning", "critical")]
    assert loud == []


@pytest.mark.slow
def test_compiled_model_inductor(tmp_path: Path) -> None:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("inductor needs a C compiler on the CPU and this machine has none (no gcc, no cc)")
    report, field = compiled_flow_run(tmp_path / "run", backend="inductor", steps=60)
    check_watched_through_the_wrapper(tmp_path / "run", report, field)

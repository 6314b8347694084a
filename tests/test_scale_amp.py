"""Mixed precision (issue 21): under `torch.autocast` (bf16 on the CPU) and `torch.amp.GradScaler`, the gradient
norms gendiag reports are the unscaled ones (not 65,536 times the true norm), the steps the scaler skips on an
overflow are counted in the report, and their unchanged weights are not taken for stalled parameters. The loop is
written the way the PyTorch AMP recipe writes one: scale(loss).backward(), scaler.step(opt), scaler.update()."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import gendiag

STEPS = 120
OVERFLOW_AT = (21, 41)  # steps whose scaled loss overflows: right after the weights are copied to measure an update


def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    return torch.stack([angle.cos(), angle.sin()], 1) * 2 + 0.1 * torch.randn(n, 2, generator=generator)


def denoiser() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 2))


def amp_loop(run_dir: Path, watch_optimizer: bool) -> tuple[gendiag.Monitor, dict[int, float]]:
    """A denoiser on 2-D data in bf16 autocast with a GradScaler; returns the Monitor and, per step that was not
    skipped, the true (unscaled) global gradient norm."""
    generator = torch.Generator().manual_seed(1)
    model = denoiser()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    scaler = torch.amp.GradScaler("cpu")
    mon = gendiag.Monitor(run_dir, task="generic", flush_every=25)
    if watch_optimizer:
        mon.watch(model, t_arg=None, optimizer=opt, scaler=scaler)
    else:
        mon.watch(model, t_arg=None, scaler=scaler)
    true_norms: dict[int, float] = {}
    for step in range(1, STEPS + 1):
        x = ring(128, generator)
        sigma = torch.rand(128, 1, generator=generator)
        noisy = x + sigma * torch.randn(x.shape, generator=generator)
        mon.observe_data(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = (model(torch.cat([noisy, sigma], 1)).float() - x).square().mean()
        overflow = 1e38 if step in OVERFLOW_AT else 1.0  # an fp16-style overflow: the scaled loss is infinite
        scale = scaler.get_scale()
        scaler.scale(loss * overflow).backward()
        scaled = math.sqrt(sum(float(p.grad.double().square().sum()) for p in model.parameters()))
        if step not in OVERFLOW_AT:
            true_norms[step] = scaled / scale
        scaler.step(opt)
        scaler.update()
        mon.step(step, loss)
        opt.zero_grad(set_to_none=True)
    return mon, true_norms


@pytest.mark.slow
@pytest.mark.parametrize("watch_optimizer", [True, False], ids=["optimizer-hooks", "at-monitor-step"])
def test_amp_gradients_are_unscaled_and_skipped_steps_counted(tmp_path: Path, watch_optimizer: bool) -> None:
    mon, true_norms = amp_loop(tmp_path / "run", watch_optimizer)
    report = mon.finish()
    loud = [f"{f.code}: {f.title}" for f in report.findings if f.severity in ("warning", "critical")]
    assert loud == []
    frame = pd.read_csv(tmp_path / "run" / "metrics.csv")
    logged = frame[frame["tag"] == "grad/global_norm"]
    assert len(logged) >= 10
    for step, value in zip(logged["step"], logged["value"]):
        if step in true_norms:
            assert value == pytest.approx(true_norms[step], rel=1e-3)  # unscaled: the scale was 65536
    assert logged["value"].max() < 100
    state = json.loads((tmp_path / "run" / "probe_data.json").read_text())["gradients"]
    assert state["scaler_skipped_steps"] == 2 and state["scaler_first_skipped"] == list(OVERFLOW_AT)
    assert state["zero_update_samples"] == 0  # the skipped steps' unchanged weights are not measured as updates
    text = (tmp_path / "run" / "report.md").read_text()
    assert "GradScaler skipped 2 optimizer steps on an overflow (steps 21, 41)" in text


def test_scaler_must_be_a_grad_scaler(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path / "run", task="generic")
    with pytest.raises(TypeError, match=r"Monitor.watch\('model'\): scaler must be a torch.amp.GradScaler"):
        mon.watch(denoiser(), t_arg=None, scaler=object())
    mon.close()

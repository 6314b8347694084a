"""EMA copies (issue 27, item 5), on a flow-matching loop written as a user writes one: its own ring-of-Gaussians
helper, a velocity network called as `net(x, t)`, an EMA kept by hand or by `torch.optim.swa_utils.AveragedModel`,
samples drawn from the EMA copy. `watch(ema, ema_of="model")` makes the copy's sampling calls count against the
training calls of the network it follows (train-sample-input-mismatch, including a sampler run from the data end),
and `ema-lagging` names a copy whose decay is too high for the run or whose update is never called."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

import gendiag

PROBES = ["inputs", "sampling_calls", "ema", "gradients"]


def ring_of_gaussians(n: int, gen: torch.Generator) -> torch.Tensor:
    which = torch.randint(0, 8, (n,), generator=gen).float()
    centres = torch.stack([torch.cos(which * math.pi / 4), torch.sin(which * math.pi / 4)], dim=1) * 2.0
    return centres + 0.1 * torch.randn(n, 2, generator=gen)


class VelocityNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


@torch.no_grad()
def euler_sample(net: nn.Module, n: int, gen: torch.Generator, from_data_end: bool = False) -> torch.Tensor:
    x = torch.randn(n, 2, generator=gen)
    steps = 40
    for i in range(steps):
        if from_data_end:  # the bug: starts at t = 1 (where training holds the data) and integrates back to 0
            x = x - net(x, torch.full((n,), 1 - i / steps)) / steps
        else:
            x = x + net(x, torch.full((n,), i / steps)) / steps
    return x


def train(run_dir, seed: int, decay: float = 0.99, averaged: bool = False, update_ema: bool = True,
          from_data_end: bool = False, steps: int = 400) -> tuple[list, dict]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = VelocityNet()
    if averaged:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    else:
        ema = copy.deepcopy(model)
        for p in ema.parameters():
            p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="flow", probes=PROBES, strict=True)
    mon.watch(model, optimizer=opt)
    mon.watch(ema, name="ema", ema_of=model)
    for step in range(steps):
        x1 = ring_of_gaussians(256, gen)
        x0 = torch.randn(256, 2, generator=gen)
        t = torch.rand(256, generator=gen)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        loss = ((model(xt, t) - (x1 - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if update_ema and averaged:
            ema.update_parameters(model)
        elif update_ema:
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), model.parameters()):
                    p_ema.mul_(decay).add_(p, alpha=1 - decay)
        mon.observe_data(x1)
        mon.observe_data(x0, role="source")
        mon.step(step, loss=loss.item())
    with mon.sampling():
        samples = euler_sample(ema, 512, gen, from_data_end)
    mon.observe_samples(samples)
    report = mon.finish()
    return report.findings, json.loads((run_dir / "probe_data.json").read_text())


def codes(findings: list, severities: tuple[str, ...] = ("warning", "critical")) -> set[str]:
    return {f.code for f in findings if f.severity in severities}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_ema_is_compared_with_the_model_it_follows_and_stays_silent(tmp_path, seed: int) -> None:
    """Sampling only through the EMA copy, the inputs probe still compares (the copy's calls against the model's
    training calls); nothing is raised, and the copy, whose parameters require gradients under AveragedModel, is
    not taken for a network that receives none."""
    findings, states = train(tmp_path, seed, averaged=seed == 1)
    assert states["inputs"]["model"] == "model"
    assert max(r for r in states["inputs"]["ratios"] if r == r) < 0.4
    assert states["ema"]["ema"]["ema_moved"] > 0.5 * states["ema"]["ema"]["model_moved"]
    assert not codes(findings) & {"ema-lagging", "train-sample-input-mismatch", "no-gradient-reaches",
                                  "params-stalled"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_flow_sampler_from_the_data_end_is_named_through_the_ema(tmp_path, seed: int) -> None:
    findings, _ = train(tmp_path, seed, from_data_end=True)
    found = [f for f in findings if f.code == "train-sample-input-mismatch"]
    assert found and found[0].severity == "critical"
    assert "integrates from the data end" in found[0].message
    assert "`ema`, the EMA copy of `model`" in found[0].message
    assert found[0].evidence["sampled_through"] == "ema" and found[0].evidence["sampler_reversed"] is True


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_ema_whose_decay_is_too_high_for_the_run_lags(tmp_path, seed: int) -> None:
    findings, _ = train(tmp_path, seed, decay=0.9999, averaged=seed == 2)
    found = [f for f in findings if f.code == "ema-lagging"]
    assert found and found[0].severity == "critical"
    evidence = found[0].evidence
    assert evidence["ema"] == "ema" and evidence["follows"] == "model"
    assert 0 < evidence["ema_moved"] < 0.1 * evidence["model_moved"]
    assert evidence["moved_ratio"] == pytest.approx(evidence["ema_moved"] / evidence["model_moved"], abs=1e-3)


@pytest.mark.slow
def test_an_ema_never_updated_is_named(tmp_path) -> None:
    findings, _ = train(tmp_path, 0, update_ema=False)
    found = [f for f in findings if f.code == "ema-lagging"]
    assert found and found[0].severity == "critical" and found[0].evidence["ema_moved"] == 0
    assert "never changed" in found[0].message


def test_ema_of_must_name_a_watched_network_with_the_same_parameters(tmp_path) -> None:
    model, other = VelocityNet(), nn.Linear(2, 2)
    mon = gendiag.Monitor(tmp_path, task="flow", probes=PROBES)
    with pytest.raises(ValueError, match="ema_of='net' names no watched network"):
        mon.watch(copy.deepcopy(model), name="ema", ema_of="net")
    with pytest.raises(ValueError, match="watch the model it averages first"):
        mon.watch(copy.deepcopy(model), name="ema", ema_of=model)
    mon.watch(model)
    with pytest.raises(ValueError, match="parameters of the network it follows"):
        mon.watch(other, name="ema", ema_of="model")
    mon.watch(copy.deepcopy(model), name="ema", ema_of="model")
    with pytest.raises(ValueError, match="is itself an EMA copy"):
        mon.watch(copy.deepcopy(model), name="ema2", ema_of="ema")
    mon.finish()

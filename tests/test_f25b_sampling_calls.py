"""`sampler-state-frozen` from the network's own sampling calls (no `sampler=` fact) and `t-range-untrained`, on
loops written as a user would: their own data helper, their own network convention, their own sampler."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gendiag


def blobs(n: int, generator: torch.Generator) -> torch.Tensor:
    """The user's data: two blobs at (±2, 0), rows in order (first blob, then second)."""
    half = n // 2
    centers = torch.tensor([[-2.0, 0.0]] * half + [[2.0, 0.0]] * (n - half))
    return centers + 0.3 * torch.randn(n, 2, generator=generator)


class Field(nn.Module):
    """The user's network: one input, x and t concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        return self.net(xt)


def flow_run(tmp_path, seed: int, sampler: str, logit_normal: bool = False) -> list:
    """Flow matching x0 -> x1 with the user's Euler sampler: "euler" right, "still" (the step's result dropped) or
    "restart" (each step from the initial noise plus one step); t drawn uniformly or logit-normal (as SD3 does)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = Field()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    mon = gendiag.Monitor(tmp_path / f"flow_{sampler}_{seed}_{logit_normal}", task="flow", probes=["sampling_calls"],
                          record_rows=4)
    mon.watch(net, "v", inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]))
    v = lambda x, t: net(torch.cat([x, t.expand(len(x), 1)], 1))
    for it in range(150):
        x1 = blobs(128, gen)
        x0 = torch.randn(128, 2, generator=gen)
        t = torch.sigmoid(torch.randn(128, 1, generator=gen)) if logit_normal else torch.rand(128, 1, generator=gen)
        loss = (net(torch.cat([(1 - t) * x0 + t * x1, t], 1)) - (x1 - x0)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(it, loss=loss)
    with torch.no_grad(), mon.sampling():
        x = torch.randn(256, 2, generator=gen)
        start, steps = x.clone(), 20
        for i in range(steps):
            t = torch.full((1, 1), i / steps)
            if sampler == "euler":
                x = x + v(x, t) / steps
            elif sampler == "still":
                x_next = x + v(x, t) / steps  # noqa: F841 (the bug: never assigned back)
            else:
                x = start + v(x, t) / steps
    return mon.finish().findings


def ddpm_run(tmp_path, seed: int, t_high: int) -> list:
    """DDPM with T=100, the network called as net(t, x) with integer t, trained on t in [0, t_high), sampled from
    T - 1 down to 0 with the user's ancestral sampler."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    T = 100
    betas = torch.linspace(1e-4, 0.05, T)
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)

    class Eps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 2))

        def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.net(torch.cat([x, (t.float() / T)[:, None]], 1))

    net = Eps()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    mon = gendiag.Monitor(tmp_path / f"ddpm_{t_high}_{seed}", task="diffusion", probes=["sampling_calls"])
    mon.watch(net, "eps", x_arg=1, t_arg=0)
    for it in range(150):
        x0 = blobs(128, gen)
        t = torch.randint(0, t_high, (128,), generator=gen)
        noise = torch.randn(128, 2, generator=gen)
        a = abar[t][:, None]
        loss = (net(t, a.sqrt() * x0 + (1 - a).sqrt() * noise) - noise).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(it, loss=loss)
    with torch.no_grad(), mon.sampling():
        x = torch.randn(256, 2, generator=gen)
        for step in reversed(range(T)):
            t = torch.full((256,), step, dtype=torch.long)
            eps = net(t, x)
            x = (x - betas[step] / (1 - abar[step]).sqrt() * eps) / alphas[step].sqrt()
            if step > 0:
                x = x + betas[step].sqrt() * torch.randn(256, 2, generator=gen)
    return mon.finish().findings


def named(findings: list, code: str) -> list:
    return [f for f in findings if f.code == code and f.severity in ("warning", "critical")]


def test_a_sampler_that_drops_each_step_is_frozen(tmp_path) -> None:
    found = named(flow_run(tmp_path, 0, "still"), "sampler-state-frozen")
    assert len(found) == 1 and found[0].severity == "critical"
    assert found[0].evidence["largest_change"] == 0 and found[0].evidence["distinct_times"] == 20


def test_a_sampler_that_restarts_from_its_start_is_named(tmp_path) -> None:
    found = named(flow_run(tmp_path, 0, "restart"), "sampler-state-frozen")
    assert len(found) == 1 and found[0].severity == "warning"
    assert found[0].evidence["restart_residual"] < 1e-3 and found[0].evidence["restart_growth"] < 1.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_right_euler_sampler_is_not_frozen(tmp_path, seed: int) -> None:
    findings = flow_run(tmp_path, seed, "euler")
    assert not named(findings, "sampler-state-frozen")
    assert not named(findings, "t-range-untrained")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logit_normal_times_are_not_an_untrained_range(tmp_path, seed: int) -> None:
    """Few rows kept a call (record_rows=4: 600 training times) of a draw that seldom reaches the ends of [0, 1]."""
    assert not named(flow_run(tmp_path, seed, "euler", logit_normal=True), "t-range-untrained")


def test_training_on_the_lowest_quarter_of_the_steps_is_named(tmp_path) -> None:
    found = named(ddpm_run(tmp_path, 0, 25), "t-range-untrained")
    assert len(found) == 1 and found[0].severity == "critical"
    evidence = found[0].evidence
    assert evidence["train_range"][1] <= 24 and evidence["sampling_range"] == [0, 99]
    assert math.isclose(evidence["untrained_share"], 0.75, abs_tol=0.06)
    assert "[0, 24]" in found[0].message and "[0, 99]" in found[0].message


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ddpm_trained_on_every_step_is_silent(tmp_path, seed: int) -> None:
    findings = ddpm_run(tmp_path, seed, 100)
    assert not named(findings, "t-range-untrained")
    assert not named(findings, "sampler-state-frozen")


@pytest.mark.slow
def test_an_untrained_range_of_t_is_named_as_the_cause_of_the_input_mismatch(tmp_path) -> None:
    from benchmarks.calibration_loops import ddpm

    findings = ddpm(tmp_path, 0, 300, "t-quarter").finish().findings
    codes = [f.code for f in findings]
    mismatch = [f for f in findings if f.code == "train-sample-input-mismatch"]
    assert "t-range-untrained" in codes and mismatch
    assert mismatch[0].consequence_of == ["t-range-untrained"]
    assert codes.index("t-range-untrained") < codes.index("train-sample-input-mismatch")

"""Issue 27, "causes named, not symptoms": diffusion faults named by their cause, on a DDPM loop written as a user
would write it (their own ring data helper, integer timesteps, `model(x, t)`, a hand-written ancestral or DDIM
sampler; only the public Monitor API).

- `forward-process-off-schedule`: x_t built without the square roots of ᾱ_t.
- `loss-at-baseline`: the noise in the target is not the noise in x_t.
- `sampler-parameterization-mismatch`: a noise predictor sampled as if it predicted x0, and the reverse.
- `sampler-schedule-misindexed`: a DDIM sampler whose ᾱ_{t-1} wraps to ᾱ_{T-1} at its last step.

Each fires on its bug and stays silent on the healthy loop over three seeds."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import gendiag

T = 100
PROBES = ["forward_process", "regression", "diffusion_sampler"]


def ring(n: int, gen: torch.Generator) -> torch.Tensor:
    """Eight Gaussian blobs on the unit circle, the user's toy data."""
    k = torch.randint(0, 8, (n,), generator=gen).float() * (2 * math.pi / 8)
    return torch.stack([k.cos(), k.sin()], 1) + 0.08 * torch.randn(n, 2, generator=gen)


class Denoiser(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        time = t.float() / T if not t.is_floating_point() else t  # integer steps, or already the fraction step / T
        return self.net(torch.cat([x, time[:, None]], 1))


BETAS = torch.linspace(1e-4, 0.1, T)
ALPHAS = 1 - BETAS
ABAR = torch.cumprod(ALPHAS, 0)


def at(i: int, n: int, time: str) -> torch.Tensor:
    """The network's time for step i: the integer step, or the fraction i / T."""
    return torch.full((n,), i) if time == "step" else torch.full((n,), i / T)


def ancestral(model: nn.Module, n: int, gen: torch.Generator, predicts: str, time: str) -> torch.Tensor:
    """DDPM ancestral sampling, reading the output as `predicts` ("eps" or "x0")."""
    x = torch.randn(n, 2, generator=gen)
    for i in reversed(range(T)):
        out = model(x, at(i, n, time))
        abar_prev = ABAR[i - 1] if i > 0 else torch.tensor(1.0)
        if predicts == "eps":
            x0 = (x - (1 - ABAR[i]).sqrt() * out) / ABAR[i].sqrt()
        else:
            x0 = out
        mean = (abar_prev.sqrt() * BETAS[i] * x0 + ALPHAS[i].sqrt() * (1 - abar_prev) * x) / (1 - ABAR[i])
        if i > 0:
            var = BETAS[i] * (1 - abar_prev) / (1 - ABAR[i])
            x = mean + var.sqrt() * torch.randn(n, 2, generator=gen)
        else:
            x = mean
    return x


def ddim(model: nn.Module, n: int, gen: torch.Generator, wraps: bool, time: str) -> torch.Tensor:
    """DDIM (η = 0) on a noise predictor; `wraps`: ᾱ_{t-1} read as ABAR[i - 1] at i = 0 too (ABAR[-1])."""
    x = torch.randn(n, 2, generator=gen)
    for i in reversed(range(T)):
        eps = model(x, at(i, n, time))
        x0 = (x - (1 - ABAR[i]).sqrt() * eps) / ABAR[i].sqrt()
        abar_prev = ABAR[i - 1] if (i > 0 or wraps) else torch.tensor(1.0)
        x = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps
    return x


def train_ddpm(run_dir, seed: int, *, bug: str = "", predicts: str = "eps", sampler: str = "ancestral",
               steps: int = 600, time: str = "step", ema: bool = False) -> list[gendiag.Finding]:
    """`bug`: "" (healthy), "no-sqrt" (x_t without square roots), "other-noise" (a fresh noise in the target).
    `predicts`: what the network is trained on ("eps" or "x0"); `sampler`: "ancestral" reading the output as the
    network predicts, "ancestral-eps" / "ancestral-x0" reading it as that, "ddim" or "ddim-wraps". `time`: the
    network gets the integer step ("step") or the fraction step / T ("fraction"), in training and sampling. `ema`:
    sample from an EMA copy of the network, watched under its own name."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = Denoiser()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with gendiag.Monitor(run_dir, task="diffusion", probes=PROBES, schedule=ABAR, check_every=None) as mon:
        mon.watch(model, x_arg=0, t_arg=1)
        sampled = model
        if ema:
            sampled = mon.watch(copy.deepcopy(model).requires_grad_(False), name="ema")
        for step in range(steps):
            x0 = ring(256, gen)
            mon.observe_data(x0)
            t = torch.randint(0, T, (256,), generator=gen)
            noise = torch.randn(x0.shape, generator=gen)
            ab = ABAR[t][:, None]
            if bug == "no-sqrt":
                xt = ab * x0 + (1 - ab) * noise
            else:
                xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
            target = noise if predicts == "eps" else x0
            if bug == "other-noise":
                target = torch.randn(x0.shape, generator=gen)
            loss = ((model(xt, t if time == "step" else t / T) - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if ema:
                with torch.no_grad():
                    for p_ema, p in zip(sampled.parameters(), model.parameters()):
                        p_ema.lerp_(p, 0.05)
            mon.step(step, loss)
        with torch.no_grad(), mon.sampling():
            if sampler.startswith("ddim"):
                samples = ddim(sampled, 512, gen, wraps=sampler == "ddim-wraps", time=time)
            else:
                reads = predicts if sampler == "ancestral" else sampler.split("-")[1]
                samples = ancestral(sampled, 512, gen, reads, time)
        mon.observe_samples(samples)
    return mon.finish().findings


def codes(findings: list[gendiag.Finding]) -> dict[str, gendiag.Finding]:
    return {f.code: f for f in findings}


CAUSES = {"forward-process-off-schedule", "loss-at-baseline", "sampler-parameterization-mismatch",
          "sampler-schedule-misindexed"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("predicts, sampler, time, ema", [("eps", "ancestral", "step", False),
                                                          ("x0", "ancestral", "step", True),
                                                          ("eps", "ddim", "fraction", False)])
def test_healthy_ddpm_names_none_of_the_causes(tmp_path, seed, predicts, sampler, time, ema) -> None:
    found = codes(train_ddpm(tmp_path / "run", seed, predicts=predicts, sampler=sampler, steps=400, time=time,
                             ema=ema))
    assert not set(found) & CAUSES, found


@pytest.mark.parametrize("time", ["step", "fraction"])
def test_missing_square_roots_are_named(tmp_path, time) -> None:
    found = codes(train_ddpm(tmp_path / "run", 0, bug="no-sqrt", steps=200, time=time))
    finding = found["forward-process-off-schedule"]
    assert finding.severity == "critical" and finding.evidence["missing_square_root"]
    assert finding.evidence["off"] > 0.3 and finding.evidence["off_root"] < 0.1
    assert not set(found) & CAUSES - {"forward-process-off-schedule"}


def test_a_target_noise_apart_from_the_input_noise_is_named(tmp_path) -> None:
    found = codes(train_ddpm(tmp_path / "run", 0, bug="other-noise", steps=300))
    finding = found["loss-at-baseline"]
    assert finding.severity == "critical"
    assert abs(finding.evidence["loss_per_element"] - 1) < 0.1
    assert finding.evidence["spread_over_loss"] < 0.01
    assert "forward-process-off-schedule" not in found


@pytest.mark.slow
@pytest.mark.parametrize("predicts, sampler, ema", [("eps", "ancestral-x0", False), ("x0", "ancestral-eps", False),
                                                    ("eps", "ancestral-x0", True)])
def test_a_sampler_reading_the_other_parameterization_is_named(tmp_path, predicts, sampler, ema) -> None:
    found = codes(train_ddpm(tmp_path / "run", 0, predicts=predicts, sampler=sampler, steps=400, ema=ema))
    finding = found["sampler-parameterization-mismatch"]
    assert finding.severity == "critical"
    assert finding.evidence["trained_as"] == predicts and finding.evidence["sampled_as"] == sampler.split("-")[1]
    assert "sampler-schedule-misindexed" not in found


@pytest.mark.parametrize("time", ["step", "fraction"])
def test_a_ddim_whose_last_step_wraps_to_the_schedules_end_is_named(tmp_path, time) -> None:
    found = codes(train_ddpm(tmp_path / "run", 0, sampler="ddim-wraps", steps=400, time=time))
    finding = found["sampler-schedule-misindexed"]
    assert finding.severity == "critical"
    assert abs(finding.evidence["last_step"]["b"]) > 0.9 and finding.evidence["last_step"]["residual"] < 1e-3
    assert "sampler-parameterization-mismatch" not in found


# -- the same causes in `gendiag check-sampler` (gendiag.testing), on samplers given the exact noise prediction ----


def ddpm_reading_x0(eps_fn, x, betas, steps, generator):
    """A user's ancestral DDPM that treats the network's output as the clean sample."""
    abar = torch.cumprod(1 - betas, 0)
    for t in reversed(range(len(betas))):
        x0 = eps_fn(x, torch.full((x.shape[0],), float(t))).double()
        a_prev = abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
        mean = (a_prev.sqrt() * betas[t] * x0 + (1 - betas[t]).sqrt() * (1 - a_prev) * x) / (1 - abar[t])
        x = mean.float()
        if t > 0:
            x = x + (betas[t] * (1 - a_prev) / (1 - abar[t])).sqrt().float() * torch.randn(x.shape, generator=generator)
    return x


def ddim_wrapping(eps_fn, x, betas, steps):
    """DDIM whose ᾱ_{t-1} is abar[t - 1] at t = 0 too, i.e. abar[-1]."""
    abar = torch.cumprod(1 - betas, 0)
    for t in reversed(range(len(betas))):
        eps = eps_fn(x, torch.full((x.shape[0],), float(t))).double()
        x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        x = (abar[t - 1].sqrt() * x0 + (1 - abar[t - 1]).sqrt() * eps).float()
    return x


def test_check_sampler_names_a_sampler_reading_noise_as_x0() -> None:
    from gendiag.testing import check_sampler

    [verdict] = check_sampler(ddpm_reading_x0, "ddpm", only=("samples follow the target",), examples=2)
    assert not verdict.passed and "sampler-parameterization-mismatch" in verdict.message


def ddpm_wrapping(eps_fn, x, betas, steps, generator):
    """Ancestral DDPM whose ᾱ_{t-1} is abar[t - 1] at t = 0 too: its posterior mean blows the last state up."""
    abar = torch.cumprod(1 - betas, 0)
    for t in reversed(range(len(betas))):
        eps = eps_fn(x, torch.full((x.shape[0],), float(t))).double()
        x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        mean = (abar[t - 1].sqrt() * betas[t] * x0 + (1 - betas[t]).sqrt() * (1 - abar[t - 1]) * x) / (1 - abar[t])
        x = mean.float()
        if t > 0:
            x = x + (betas[t] * (1 - abar[t - 1]) / (1 - abar[t])).sqrt().float() * torch.randn(x.shape, generator=generator)
    return x


@pytest.mark.parametrize("sampler, kind", [(ddim_wrapping, "ddim"), (ddpm_wrapping, "ddpm")])
def test_check_sampler_names_a_last_step_wrapping_to_the_schedules_end(sampler, kind) -> None:
    from gendiag.testing import check_sampler

    [verdict] = check_sampler(sampler, kind, only=("samples follow the target",), examples=2)
    assert not verdict.passed and "sampler-schedule-misindexed" in verdict.message
    assert "sampler-parameterization-mismatch" not in verdict.message

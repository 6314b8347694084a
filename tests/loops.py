"""Small, fast, real training loops for the probe tests: a 2D flow-matching loop and a 2D DDPM loop on the moons
point cloud, each with switches that break it the way real projects break (the wrong network input, a target that
explodes as t -> 1, a learning rate far too small or growing without bound, a slow data loader).

Every loop attaches a `gendiag.Monitor` through the public API only, trains for real and returns the Monitor's
`Report`. Settings are small (a few hundred steps of a 64-wide MLP) so a loop runs in a second or two on one core.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

import gendiag
from gendiag.report import Report
from reference_models.nets import VelocityMLP


def blob_images(n: int, generator: torch.Generator, size: int = 8) -> torch.Tensor:
    """(n, 1, size, size) images in [0, 1]: one soft round blob each, at a random place and of a random width (the
    image data of the integration tests)."""
    grid = torch.arange(size, dtype=torch.float32)
    centre = 1.5 + (size - 3) * torch.rand(n, 2, generator=generator)
    width = 1.0 + torch.rand(n, 1, 1, generator=generator)
    distance = ((grid[None, :, None] - centre[:, 0, None, None]) ** 2
                + (grid[None, None, :] - centre[:, 1, None, None]) ** 2)
    return torch.exp(-distance / (2 * width ** 2))[:, None]


def moons(n: int, generator: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    """`n` points of the two-moons data set (as scikit-learn's make_moons), drawn with `generator`."""
    upper = torch.rand(n, generator=generator) < 0.5
    angle = torch.rand(n, generator=generator) * math.pi
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=generator)


@dataclass(frozen=True)
class FlowSetup:
    """One 2D flow-matching run. The defaults train a healthy model; each other value is a known fault.

    inputs: "xt" feeds the network x_t = t*x1 + (1-t)*x0 (right); "x0" feeds it the source batch at every t
        (the flagship project's bug).
    target: "linear" regresses on x1 - x0 (right); "over_1mt" on (x1 - x0)/(1 - t), the conditional velocity
        evaluated at x0 instead of x_t, which grows without bound as t -> 1.
    optimizer: "adam" or "sgd"; lr_growth multiplies the learning rate after every step (a scheduler going the
        wrong way when > 1).
    data_delay: seconds slept in the "data" phase of every step (a slow loader).
    """

    steps: int = 300
    batch_size: int = 128
    hidden: int = 64
    depth: int = 2
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    lr_growth: float = 1.0
    inputs: Literal["xt", "x0"] = "xt"
    target: Literal["linear", "over_1mt"] = "linear"
    data_delay: float = 0.0
    seed: int = 0


def train_flow(run_dir: str | Path, setup: FlowSetup = FlowSetup(), *, probes: str | list[str] = "default",
               every: int = 1, strict: bool = True, sample: bool = True, **facts: Any) -> Report:
    """Train 2D flow matching on moons with a Monitor attached (task "flow"), sample with 20 Euler steps,
    and return the report. `strict` makes a failing probe raise instead of being switched off."""
    torch.manual_seed(setup.seed)
    data_gen = torch.Generator().manual_seed(setup.seed + 1)
    model = VelocityMLP(dim=2, hidden=setup.hidden, depth=setup.depth, time_dim=16)
    optimizer = _optimizer(setup.optimizer, model, setup.lr)
    growth = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=setup.lr_growth)
    facts.setdefault("source", lambda n, generator=None: torch.randn(n, 2, generator=generator))
    with gendiag.Monitor(run_dir, task="flow", probes=probes, every=every, strict=strict, **facts) as mon:
        mon.watch(model, name="model", x_arg=0, t_arg=1)
        for step in range(1, setup.steps + 1):
            with mon.phase("data"):
                x1 = moons(setup.batch_size, data_gen)
                x0 = torch.randn(setup.batch_size, 2, generator=data_gen)
                if setup.data_delay:
                    time.sleep(setup.data_delay)
            with mon.phase("step"):
                t = torch.rand(setup.batch_size, generator=data_gen)
                xt = t[:, None] * x1 + (1 - t[:, None]) * x0
                target = x1 - x0 if setup.target == "linear" else (x1 - x0) / (1 - t[:, None])
                fed = xt if setup.inputs == "xt" else x0
                per_sample = (model(fed, t) - target).pow(2).sum(1)
                loss = per_sample.mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                growth.step()
            if step == 1 or step % 50 == 0:
                mon.observe_data(x1, role="data")
                mon.observe_data(x0, role="source")
            mon.step(step, loss, t=t, per_sample_loss=per_sample.detach())
        if sample:
            with mon.sampling():
                samples = euler(model, torch.randn(512, 2, generator=data_gen), 20)
            mon.observe_samples(samples)
    return mon.finish()


@torch.no_grad()
def euler(model: torch.nn.Module, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate dx/dt = model(x, t) from t = 0 to 1 with `steps` Euler steps."""
    x = x0.clone()
    for k in range(steps):
        x = x + model(x, torch.full((x.shape[0],), k / steps)) / steps
    return x


@dataclass(frozen=True)
class DiffusionSetup:
    """One 2D DDPM run (epsilon prediction, integer timesteps 0..T-1, linear beta schedule)."""

    steps: int = 300
    batch_size: int = 128
    timesteps: int = 100
    beta_start: float = 1e-4
    beta_end: float = 0.2
    hidden: int = 64
    lr: float = 1e-3
    seed: int = 0


def alphas_cumprod(setup: DiffusionSetup) -> torch.Tensor:
    """ᾱ_t of the setup's linear beta schedule."""
    betas = torch.linspace(setup.beta_start, setup.beta_end, setup.timesteps)
    return torch.cumprod(1 - betas, dim=0)


def train_ddpm(run_dir: str | Path, setup: DiffusionSetup = DiffusionSetup(), *,
               probes: str | list[str] = "default", every: int = 1, strict: bool = True) -> Report:
    """Train a 2D DDPM on moons with a Monitor attached (task "diffusion", fact `schedule`) and return the report.
    Per-sample losses go to the Monitor with the integer timesteps as `t`."""
    torch.manual_seed(setup.seed)
    data_gen = torch.Generator().manual_seed(setup.seed + 1)
    abar = alphas_cumprod(setup)
    model = VelocityMLP(dim=2, hidden=setup.hidden, depth=2, time_dim=16, time_scale=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=setup.lr)
    with gendiag.Monitor(run_dir, task="diffusion", probes=probes, every=every, strict=strict,
                         schedule=abar) as mon:
        mon.watch(model, name="model", x_arg=0, t_arg=1)
        for step in range(1, setup.steps + 1):
            with mon.phase("data"):
                x0 = moons(setup.batch_size, data_gen)
                noise = torch.randn(setup.batch_size, 2, generator=data_gen)
            with mon.phase("step"):
                t = torch.randint(0, setup.timesteps, (setup.batch_size,), generator=data_gen)
                a = abar[t][:, None]
                xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
                per_sample = (model(xt, t.float()) - noise).pow(2).sum(1)
                loss = per_sample.mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if step == 1 or step % 50 == 0:
                mon.observe_data(x0, role="data")
                mon.observe_data(noise, role="source")
            mon.step(step, loss, t=t, per_sample_loss=per_sample.detach())
    return mon.finish()


def codes(report: Report, severities: tuple[str, ...] = ("critical", "warning")) -> set[str]:
    """The codes of a report's findings at the given severities."""
    return {f.code for f in report.findings if f.severity in severities}


def _optimizer(name: str, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr)
    raise ValueError(f"tests.loops: optimizer must be 'adam' or 'sgd', got {name!r}")

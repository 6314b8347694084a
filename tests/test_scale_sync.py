"""No host synchronisation on ordinary steps (issue 21): between two flushes, `Monitor.step`, `observe_data`, the
forward hooks and the optimizer hooks call nothing that makes the host wait for the device. On the CPU nothing
waits, so the test counts the calls that would: every `item`, `cpu`, `tolist`, `numpy`, `float(t)`, `bool(t)`,
`int(t)` on a tensor made from gendiag's own code outside a flush (and the live check that may follow one), during
a flow-matching loop written as a user writes one. A NaN loss is still caught at the next flush, and named by the
step it appeared in."""

from __future__ import annotations

import math
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

import contextlib
import pytest
import torch
from torch import nn

import gendiag

SYNCING = ("item", "cpu", "tolist", "numpy", "__float__", "__bool__", "__int__", "__index__")


# -- the user's script: two moons, a small velocity MLP taking cat([x, t]), their own batch helper -------------

def two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=generator)


class VelocityNet(nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


def train(mon: gendiag.Monitor, steps: int, nan_at: int | None = None,
          on_step: Callable[[int], Any] = lambda step: None) -> None:
    """The user's loop: conditional flow matching with a straight path, Adam, default probes."""
    generator = torch.Generator().manual_seed(0)
    model = VelocityNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mon.watch(model, optimizer=opt)
    for step in range(1, steps + 1):
        on_step(step)
        x1 = two_moons(256, generator)
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], generator=generator)
        mon.observe_data(x1)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        per_sample = (model(xt, t) - (x1 - x0)).square().mean(dim=1)
        loss = per_sample.mean()
        if step == nan_at:
            loss = loss * float("nan")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        mon.step(step, loss, t=t, per_sample_loss=per_sample.detach())


# -- counting the calls that would synchronise ------------------------------------------------------------------

def _from_gendiag_outside_flush(stack: list[traceback.FrameSummary]) -> traceback.FrameSummary | None:
    """The innermost gendiag frame of a call, unless the call comes from a flush, the live check that may follow
    it, or `finish` (where the host may wait), or not from gendiag at all."""
    ours = [frame for frame in stack if "/gendiag/" in frame.filename.replace("\\", "/")]
    if not ours or any(frame.filename.replace("\\", "/").endswith("gendiag/monitor.py")
                       and frame.name in ("flush", "_check_live", "finish") for frame in ours):
        return None
    return ours[-1]


@contextlib.contextmanager
def counted_syncs() -> Iterator[list[str]]:
    """Wrap the synchronising tensor methods; yields the list of 'method at file:line' for each counted call."""
    calls: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in SYNCING}

    def wrap(name: str) -> Callable[..., Any]:
        original = originals[name]

        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            frame = _from_gendiag_outside_flush(traceback.extract_stack()[:-1])
            if frame is not None:
                calls.append(f"{name} at {frame.filename.split('/gendiag/')[-1]}:{frame.lineno} ({frame.name})")
            return original(self, *args, **kwargs)

        return wrapper

    for name in originals:
        setattr(torch.Tensor, name, wrap(name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


@pytest.mark.slow
def test_no_synchronising_call_between_flushes(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path / "run", task="flow", flush_every=50)
    with counted_syncs() as found:
        # counted from step 2: before step 1 the data batch is checked at once (by design), and step 1 is a flush
        train(mon, steps=160, on_step=lambda step: found.clear() if step == 2 else None)
    assert found == [], f"{len(found)} synchronising calls outside flushes, first: {sorted(set(found))[:5]}"
    report = mon.finish()
    assert [f.code for f in report.findings if f.severity in ("warning", "critical")] == []
    frame = mon.table.frame()
    losses = frame[frame["tag"] == "loss/train"]
    assert losses["step"].tolist() == list(range(1, 161))  # every step's loss reached the table at a flush
    assert frame[frame["tag"] == "grad/global_norm"]["step"].max() >= 150


def test_counter_sees_a_synchronising_call(tmp_path: Path) -> None:
    """The counter is not blind: `flush_every=1` makes every step a flush (allowed), but a probe that calls
    `.item()` in `on_data` outside a flush is counted."""
    from gendiag.probes.base import Probe

    class Eager(Probe):
        name = "eager"

        def on_data(self, ctx: Any, batch: torch.Tensor, role: str) -> None:
            batch.mean().item()

    mon = gendiag.Monitor(tmp_path / "run", task="flow", flush_every=50)
    mon.probes.append(Eager())
    with counted_syncs() as found:
        mon.observe_data(torch.randn(8, 2))
    assert any(call.startswith("item at") for call in found)
    mon.finish()


@pytest.mark.slow
def test_nan_loss_is_named_by_its_step_at_the_next_flush(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path / "run", task="flow", flush_every=50, check_every=None)
    seen: list[int] = []
    probe = next(p for p in mon.probes if p.name == "loss")

    def note(step: int) -> None:  # what the loss probe knew when step `step` began
        seen.append(len(probe.series))

    train(mon, steps=60, nan_at=37, on_step=note)
    assert seen[49] == 1 and seen[50] == 50  # read at the first step, then at the flush of step 50
    report = mon.finish()
    found = [f for f in report.findings if f.code == "loss-nonfinite"]
    assert len(found) == 1 and found[0].evidence["first_nonfinite_step"] == 37
    assert "step 37" in found[0].title


def test_named_losses_are_checked_like_the_loss(tmp_path: Path) -> None:
    """A GAN loop that reports only loss_d and loss_g (issue 27 item 1): a NaN in loss_g is a loss-nonfinite
    finding naming loss_g and its step; tensors are read at the flush like the loss."""
    mon = gendiag.Monitor(tmp_path / "run", task="gan", flush_every=10, check_every=None)
    for step in range(1, 31):
        loss_g = torch.tensor(float("nan") if step >= 23 else 0.7)
        mon.step(step, loss_d=torch.tensor(0.69), loss_g=loss_g)
    report = mon.finish()
    found = [f for f in report.findings if f.code == "loss-nonfinite"]
    assert len(found) == 1 and found[0].evidence["loss"] == "loss_g"
    assert found[0].evidence["first_nonfinite_step"] == 23 and found[0].evidence["nonfinite_steps"] == 8


def test_nan_data_batch_is_counted_at_the_flush_naming_its_step(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path / "run", task="flow", flush_every=10, check_every=None)
    mon.observe_data(torch.randn(16, 2))
    mon.step(1, 1.0)
    for step in range(2, 10):
        batch = torch.randn(16, 2)
        if step == 6:
            batch[3, 1] = float("inf")
        mon.observe_data(batch)  # given after step 5 was reported: observed at step 5
        mon.step(step, 1.0)
    mon.observe_data(torch.randn(16, 2))
    mon.step(10, 1.0)
    report = mon.finish()
    found = {finding.code: finding for finding in report.findings}
    assert found["data-nonfinite"].evidence["first_step"] == 5
    assert found["data-nonfinite"].severity == "critical"


def test_flush_every_is_checked(tmp_path: Path) -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="flush_every must be an integer >= 1"):
            gendiag.Monitor(tmp_path / f"run{bad}", task="flow", flush_every=bad)


@pytest.mark.slow
def test_no_synchronising_call_in_a_ddpm_loop_without_a_watched_optimizer(tmp_path: Path) -> None:
    """Another user's shape: epsilon-prediction DDPM with integer timesteps, the network called on cat([x, t / T]),
    gradients read at `mon.step` (no optimizer given) and zeroed in place (`set_to_none=False`, so the reset
    checks run), tensor scalars beside the loss."""
    steps_total = 200
    alphas = torch.cumprod(1 - torch.linspace(1e-4, 0.05, steps_total), 0)
    generator = torch.Generator().manual_seed(2)
    net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 2))
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9)
    mon = gendiag.Monitor(tmp_path / "run", task="diffusion", schedule=alphas, flush_every=50)
    mon.watch(net, inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]))
    with counted_syncs() as found:
        for step in range(1, 151):
            if step == 2:
                found.clear()
            x0 = two_moons(128, generator)
            t = torch.randint(0, steps_total, (128,), generator=generator)
            noise = torch.randn(x0.shape, generator=generator)
            a = alphas[t][:, None]
            mon.observe_data(x0)
            per_sample = (net(torch.cat([a.sqrt() * x0 + (1 - a).sqrt() * noise, t[:, None] / steps_total], 1))
                          - noise).square().mean(1)
            loss = per_sample.mean()
            loss.backward()
            mon.step(step, loss, t=t, per_sample_loss=per_sample.detach(), worst=per_sample.max().detach())
            opt.step()
            opt.zero_grad(set_to_none=False)
    assert found == [], f"{len(found)} synchronising calls outside flushes, first: {sorted(set(found))[:5]}"
    mon.finish()
    worst = mon.table.series("train/worst")
    assert list(worst.index) == list(range(1, 151)) and (worst > 0).all()  # tensor scalars, read at the flushes

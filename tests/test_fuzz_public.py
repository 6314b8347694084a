"""No exception from gendiag reaches the user's loop because of the values it observes (issue 27 item 1).

Hypothesis feeds NaN, infinite, huge, empty (0 rows), 0-d, 1-d, 4-d, wrongly wide, integer and bool tensors to every
public call a loop makes: `observe_data` (data and source), `observe_samples`, `observe_latents`, the watched
network's forward calls in training and inside `mon.sampling()`, and `step(...)` with a NaN or infinite loss and odd
per-row tensors. The loop's own network accepts any tensor (it scales it), so the bad values reach gendiag rather
than the user's code. Each run must finish with a report, and no probe may fail on them. Every example is a whole
monitored run (a few seconds), so the examples are few, drawn the same way every time, and not shrunk: a failure
prints the calls that caused it.

What stays an error, one line naming the call: a value that is not a tensor where a tensor belongs (a list, a str:
TypeError), a role other than "data"/"source", steps that do not increase, a watch whose time argument has another
shape than (B,) or (B, 1) (t_arg pointing at the wrong argument). Those are the loop's programming errors; the
values a working loop produces are never refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import gendiag
from gendiag.probes.base import TASKS

CALLS = ("data", "source", "samples", "latents", "train_forward", "sampling_forward", "step")


class Scale(nn.Module):
    """The user's network: multiplies whatever it is given by a learned scale, so any tensor passes through."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        return self.scale * x.float()


@st.composite
def odd_tensors(draw: st.DrawFn) -> torch.Tensor:
    """A tensor of any rank up to 4 (0 rows allowed), of float, integer or bool type, holding NaN, ±inf and huge
    values among ordinary ones."""
    shape = draw(st.one_of(st.just(()), st.tuples(st.integers(0, 9)),
                           st.tuples(st.integers(0, 9), st.integers(1, 5)),
                           st.tuples(st.integers(0, 5), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3))))
    dtype = draw(st.sampled_from(["float32", "float64", "int64", "uint8", "bool"]))
    if dtype.startswith("float"):
        elements = st.one_of(st.floats(-3, 3, width=32), st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30]))
        values = draw(hnp.arrays(np.float32, shape, elements=elements))
        return torch.from_numpy(values).to(getattr(torch, dtype))
    values = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 255)))
    return torch.from_numpy(values).to(getattr(torch, dtype)) if dtype != "bool" else torch.from_numpy(values) > 100


def bad_call(mon: gendiag.Monitor, net: nn.Module, call: str, value: torch.Tensor, other: torch.Tensor) -> None:
    """One public call of the loop, made with `value` (and `other`, for the second tensor of a call)."""
    if call in ("data", "source"):
        mon.observe_data(value, role=call)
    elif call == "samples":
        mon.observe_samples(value)
    elif call == "latents":
        mon.observe_latents(value, other)
    elif call == "step":
        loss = value.float().reshape(-1)[0] if value.numel() else torch.tensor(float("nan"))
        mon.step(loss=loss, per_sample_loss=other, d_real=value, d_fake=other)
    else:
        times = torch.rand(value.shape[0]) if value.dim() > 0 else 0.5
        if call == "sampling_forward":
            with mon.sampling(), torch.no_grad():
                net(value, times)
        else:
            net(value, times)


def monitored_run(run_dir: Path, task: str, calls: list[tuple[str, torch.Tensor, torch.Tensor]],
                  last: torch.Tensor) -> dict:
    """A healthy 2-D loop of 12 steps with the bad calls spread through it, then sampling, healthy samples and
    `last` as the run's last samples (what the end-of-run measurements judge); returns findings.json."""
    gen = torch.Generator().manual_seed(0)
    net = Scale()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    with gendiag.Monitor(run_dir, task=task, check_every=4, check_seconds=0.0) as mon:
        mon.watch(net, t_arg=1, optimizer=opt)
        for step in range(12):
            x = torch.randn(32, 2, generator=gen)
            mon.observe_data(x)
            mon.observe_data(torch.randn(32, 2, generator=gen), role="source")
            loss = ((net(x, torch.rand(32, generator=gen)) - 2 * x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss=loss.detach())
            if task == "vae":
                mon.observe_latents(torch.randn(16, 3, generator=gen), torch.randn(16, 3, generator=gen))
            for call, value, other in calls[step::12]:
                bad_call(mon, net, call, value, other)
        with mon.sampling(), torch.no_grad():
            samples = net(torch.randn(64, 2, generator=gen), torch.zeros(64))
        mon.observe_samples(samples)
        mon.observe_samples(last)
    return json.loads((run_dir / "findings.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
@settings(max_examples=2, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(calls=st.lists(st.tuples(st.sampled_from(CALLS), odd_tensors(), odd_tensors()), min_size=1, max_size=8),
       last=odd_tensors())
def test_odd_values_never_stop_the_loop_and_the_report_is_written(tmp_path: Path, task: str, calls: list,
                                                                   last: torch.Tensor) -> None:
    run_dir = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    saved = monitored_run(run_dir, task, calls, last)
    assert (run_dir / "report.md").stat().st_size > 0 and (run_dir / "report.html").stat().st_size > 0
    failed = [f["message"] for f in saved["findings"] if f["code"] == "probe-failed"]
    assert failed == []


@pytest.mark.parametrize("call", ["data", "samples", "latents"])
def test_what_is_not_a_tensor_is_a_one_line_type_error(tmp_path: Path, call: str) -> None:
    mon = gendiag.Monitor(tmp_path, task="vae")
    line = r"^Monitor\.observe_\w+(\(\w+(='data')?\))?: expected a torch.Tensor, got str$"
    with pytest.raises(TypeError, match=line):
        bad_call(mon, Scale(), call, "not a tensor", "not a tensor")
    mon.finish()

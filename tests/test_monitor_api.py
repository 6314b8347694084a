"""The public Monitor API on a training loop that is not ours: the calls of the README, their errors on bad
input, the context manager, and a probe that raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import gendiag
from gendiag.probes.base import Probe


class TinyField(nn.Module):
    """Someone's own velocity network, written without any of gendiag's reference code."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, t[:, None]], dim=1))


def foreign_loop(run_dir: Path, steps: int = 300) -> gendiag.Report:
    torch.manual_seed(0)
    model = TinyField()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
    with gendiag.Monitor(run_dir, task="flow") as mon:
        mon.watch(model, name="model", x_arg=0, t_arg=1)
        for step in range(1, steps + 1):
            with mon.phase("data"):
                x1 = centres[torch.randint(0, 2, (128,))] + 0.3 * torch.randn(128, 2)
                x0 = torch.randn_like(x1)
            if step % 25 == 1:
                mon.observe_data(x1, role="data")
                mon.observe_data(x0, role="source")
            with mon.phase("step"):
                t = torch.rand(128)
                xt = t[:, None] * x1 + (1 - t[:, None]) * x0
                per_sample = ((model(xt, t) - (x1 - x0)) ** 2).sum(1)
                loss = per_sample.mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            mon.step(step, loss, t=t, per_sample_loss=per_sample.detach())
        with mon.sampling():
            x = torch.randn(500, 2)
            for k in range(50):
                x = x + model(x, torch.full((500,), k / 50)) / 50
        mon.observe_samples(x)
    return mon.finish()


@pytest.mark.slow
def test_foreign_loop_gets_a_full_report_and_no_false_alarm(tmp_path: Path) -> None:
    report = foreign_loop(tmp_path / "run")
    assert all(isinstance(f, gendiag.Finding) for f in report.findings)
    loud = [f"{f.code}: {f.message}" for f in report.findings if f.severity in ("critical", "warning")]
    assert loud == []
    for name in ("findings.json", "report.md", "report.html", "metrics.csv"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))


def test_context_manager_finishes_on_exception_with_partial_report(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="user bug"):
        with gendiag.Monitor(tmp_path, task="generic") as mon:
            mon.step(1, 0.5)
            mon.step(2, 0.4)
            raise RuntimeError("user bug")
    saved = json.loads((tmp_path / "findings.json").read_text())
    assert saved["partial"] == "stopped by RuntimeError at step 2"
    assert "Partial report" in (tmp_path / "report.md").read_text()


def test_a_batch_that_is_no_tensor_names_what_is_wrong(tmp_path: Path) -> None:
    """Values and shapes are screened, never refused (tests/test_robust_values.py); a list is a programming error."""
    mon = gendiag.Monitor(tmp_path, task="flow")
    with pytest.raises(TypeError, match=r"observe_data\(role='data'\): expected a torch.Tensor, got list"):
        mon.observe_data([[1.0, 2.0]], role="data")


@pytest.mark.parametrize("batch, code", [
    (torch.tensor([[1.0, float("nan")]]), "data-nonfinite"),
    (torch.tensor([[1.0, float("inf")]]), "data-nonfinite"),
    (torch.zeros(0, 2), "batch-skipped"),
    (torch.tensor(5.0), "batch-skipped"),
])
def test_bad_batches_are_counted_not_refused(tmp_path: Path, batch: torch.Tensor, code: str) -> None:
    mon = gendiag.Monitor(tmp_path, task="flow")
    mon.observe_data(batch, role="data")
    assert code in {f.code for f in mon.finish().findings}


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task 'flows' is not one of"):
        gendiag.Monitor(tmp_path, task="flows")
    mon = gendiag.Monitor(tmp_path, task="generic")
    with pytest.raises(ValueError, match="role must be 'data' or 'source'"):
        mon.observe_data(torch.zeros(2, 2), role="noise")
    mon.step(3, 1.0)
    with pytest.raises(ValueError, match="steps must increase, got 3 after 3"):
        mon.step(3, 1.0)
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        mon.watch("model")
    with pytest.raises(TypeError, match=r"observe_latents\(logvar\): expected a torch.Tensor, got NoneType"):
        mon.observe_latents(torch.zeros(4, 3), None)


class Boom(Probe):
    name = "test-boom"

    def on_step(self, ctx, record) -> None:
        if record.step == 2:
            raise ArithmeticError("probe bug")


def test_a_probe_that_raises_is_switched_off_and_reported(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path, task="generic", probes=[])
    mon.probes.append(Boom())
    for step in range(1, 5):
        mon.step(step, 1.0 / step)
    report = mon.finish()
    failed = [f for f in report.findings if f.code == "probe-failed"]
    assert len(failed) == 1 and failed[0].severity == "info" and "ArithmeticError: probe bug" in failed[0].message
    assert "ArithmeticError" in (tmp_path / "probe_errors" / "test-boom.txt").read_text()


def test_strict_monitor_raises_the_probe_error(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path, task="generic", probes=[], strict=True, flush_every=1)  # on_step: at flushes
    mon.probes.append(Boom())
    mon.step(1, 1.0)
    with pytest.raises(ArithmeticError, match="probe bug"):
        mon.step(2, 1.0)


def test_figure_names_cannot_leave_the_run_folder(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    mon = gendiag.Monitor(tmp_path / "run", task="generic")
    for name in ("../outside", "/abs/path", "a/../../b"):
        with pytest.raises(ValueError, match="inside the run folder"):
            mon.save_figure(plt.figure(), name)
    plt.close("all")

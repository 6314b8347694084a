"""The Monitor's sinks and its public calls for recipes and runners, on a loop written as a user would write it:
a sink of the user's own receives every scalar, figure and the findings; `log_scalar`, `evaluate` and `table`
work without reaching into the Monitor's context; a conclusion that raises costs a finding, not the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import gendiag
from gendiag.sinks import Sink


class ListSink(Sink):
    """A user's sink: keeps what it is given, as a tracker client would send it."""

    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []
        self.images: list[str] = []
        self.texts: list[str] = []
        self.closed = False

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def image(self, tag: str, png: bytes, step: int) -> None:
        assert png[:4] == b"\x89PNG"
        self.images.append(tag)

    def text(self, tag: str, text: str, step: int) -> None:
        self.texts.append(text)

    def close(self) -> None:
        self.closed = True


class Denoiser(nn.Module):
    """Someone's own network on 2-D points, time as a second argument."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t.reshape(-1, 1)], dim=1))


def user_loop(run_dir: Path, sink: Sink, steps: int = 40, conclusion=None) -> tuple[gendiag.Report, gendiag.Monitor]:
    """A user's flow-matching loop with their own evaluation logged through the Monitor."""
    gen = torch.Generator().manual_seed(0)
    model = Denoiser()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = gendiag.Monitor(run_dir, task="flow", probes=["loss"], sinks=[sink])
    mon.watch(model)
    if conclusion is not None:
        mon.add_conclusion(conclusion)
    for it in range(steps):
        x1 = torch.randn(64, 2, generator=gen) * 0.3 + 1.0
        x0 = torch.randn(64, 2, generator=gen)
        t = torch.rand(64, generator=gen)
        loss = ((model(t[:, None] * x1 + (1 - t[:, None]) * x0, t) - (x1 - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(loss=loss)
        if it % 10 == 9:
            mon.log_scalar("eval/mean_velocity", mon.evaluate("model", x0, 0.5).mean())
    return mon.finish(), mon


def test_a_user_sink_receives_scalars_figures_and_findings(tmp_path: Path) -> None:
    sink = ListSink()
    report, mon = user_loop(tmp_path / "run", sink)
    tags = {tag for tag, _, _ in sink.scalars}
    assert {"loss/train", "eval/mean_velocity"} <= tags
    assert [step for tag, _, step in sink.scalars if tag == "eval/mean_velocity"] == [10, 20, 30, 40]
    assert sink.images and all(tag.startswith("figures/") for tag in sink.images)
    assert sink.texts and sink.closed
    # the default sinks still get the same scalars: the table (metrics.csv) and TensorBoard's event file
    assert len(mon.table.series("eval/mean_velocity")) == 4
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    assert report.findings is not None


def test_evaluate_leaves_training_state_alone(tmp_path: Path) -> None:
    model = Denoiser().train()
    with gendiag.Monitor(tmp_path, task="flow", probes=[]) as mon:
        mon.watch(model)
        out = mon.evaluate("model", torch.zeros(5, 2), 0.3)
        assert out.shape == (5, 2) and not out.requires_grad and model.training
        with torch.no_grad():
            assert torch.allclose(out, model(torch.zeros(5, 2), torch.full((5,), 0.3)))


def test_a_sink_must_be_a_sink(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="each of sinks must subclass gendiag.sinks.Sink, got list"):
        gendiag.Monitor(tmp_path, sinks=[[]])


def test_a_raising_conclusion_becomes_a_finding_and_the_report_goes_on(tmp_path: Path) -> None:
    def explain(findings: list[gendiag.Finding]) -> None:
        raise KeyError("share_t90")

    report, _ = user_loop(tmp_path / "run", ListSink(), steps=20, conclusion=explain)
    failed = [f for f in report.findings if f.code == "probe-failed"]
    assert len(failed) == 1 and "KeyError" in failed[0].message and failed[0].severity == "info"
    trace = tmp_path / "run" / failed[0].evidence["traceback"]
    assert "share_t90" in trace.read_text()
    saved = json.loads((tmp_path / "run" / "findings.json").read_text())["findings"]
    assert "probe-failed" in {f["code"] for f in saved} and report.html_path.is_file()


def test_a_raising_conclusion_stops_a_strict_monitor(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path, probes=[], strict=True)
    mon.add_conclusion(lambda findings: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        mon.finish()

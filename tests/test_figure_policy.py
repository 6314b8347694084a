"""Which figures the report draws: the overview always, another figure only where a finding it shows holds
(`Monitor(figures="findings")`, the default), every figure under `figures="all"`."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

import gendiag
from gendiag.context import ProbeContext
from gendiag.figures.evidence import ALSO_SHOWS, OVERVIEW, evidence_codes
from gendiag.figures.loss import loss_figure
from gendiag.figures.loss_by_t import loss_by_t_figure
from gendiag.figures.velocity import quivers
from gendiag.sinks.scalars import ScalarTable
from gendiag.sinks.tensorboard import TensorBoardSink


def test_codes_come_from_the_code_table() -> None:
    assert evidence_codes(loss_by_t_figure) == {"loss-t-imbalance", "target-explodes"}
    assert evidence_codes(quivers) == {"field-ignores-x", "field-ignores-t"}
    assert evidence_codes(loss_figure) == frozenset()  # the overview: drawn on every run


@pytest.mark.parametrize("key", sorted(OVERVIEW | set(ALSO_SHOWS)))
def test_every_named_figure_exists(key: str) -> None:
    module, name = key.split(":")
    assert callable(getattr(importlib.import_module(module), name))


def blank_figure(label: str):
    from gendiag.figures import new_figure

    figure, axis = new_figure(figsize=(2, 2))
    axis.set_title(label)
    return figure


def context(run_dir: Path, figures: str) -> ProbeContext:
    tb = TensorBoardSink(run_dir / "tb")
    return ProbeContext(run_dir=run_dir, task="flow", facts={}, tb=tb, table=ScalarTable(), figures=figures)


def test_a_figure_waits_for_its_finding(tmp_path: Path) -> None:
    ctx = context(tmp_path, "findings")
    shown = ctx.draw_figure("by_t", lambda label: blank_figure(label), "x")  # shows no code: drawn at once
    waiting = ctx.draw_figure("explodes", _named(loss_by_t_figure.__module__, "loss_by_t_figure"), "y")
    other = ctx.draw_figure("quivers", _named(quivers.__module__, "quivers"), "z")
    ctx.flush_figures()
    assert (tmp_path / shown).is_file() and not (tmp_path / waiting).exists() and not (tmp_path / other).exists()
    assert ctx.draw_evidence({"target-explodes"}, set()) == [other]
    ctx.flush_figures()
    assert (tmp_path / waiting).is_file() and not (tmp_path / other).exists()
    ctx.tb.close()


def test_a_figure_a_finding_names_is_drawn(tmp_path: Path) -> None:
    """A finding whose figure is drawn by a function the code table gives to other codes still gets its figure."""
    ctx = context(tmp_path, "findings")
    path = ctx.draw_figure("quivers", _named(quivers.__module__, "quivers"), "z")
    assert ctx.draw_evidence({"loss-diverging"}, {path}) == []
    ctx.flush_figures()
    assert (tmp_path / path).is_file()
    ctx.tb.close()


def test_all_draws_every_figure_at_once(tmp_path: Path) -> None:
    ctx = context(tmp_path, "all")
    path = ctx.draw_figure("quivers", _named(quivers.__module__, "quivers"), "z")
    ctx.flush_figures()
    assert (tmp_path / path).is_file() and ctx.draw_evidence(set(), set()) == []
    ctx.tb.close()


def _named(module: str, qualname: str):
    """A figure function that the code table knows by `module:qualname`, drawing a blank figure."""

    def draw(label: str):
        return blank_figure(label)

    draw.__module__, draw.__qualname__ = module, qualname
    return draw


def test_an_unknown_policy_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^Monitor: figures must be one of \('findings', 'all'\), got 'some'$"):
        gendiag.Monitor(tmp_path / "run", figures="some")
    assert not (tmp_path / "run").exists()


def test_the_section_says_why_a_figure_is_missing(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gendiag.Monitor(tmp_path, task="flow", probes=["loss", "loss_by_t"], check_every=None) as mon:
        for step in range(1, 121):
            x1, x0, t = torch.randn(64, 2), torch.randn(64, 2), torch.rand(64)
            per_sample = (model(torch.cat([t[:, None] * x1 + (1 - t[:, None]) * x0, t[:, None]], 1))
                          - (x1 - x0)).pow(2).sum(1)
            opt.zero_grad()
            per_sample.mean().backward()
            opt.step()
            mon.step(step, per_sample.mean(), t=t, per_sample_loss=per_sample.detach())
    sections = {section.title: section for section in mon.finish().sections}
    assert sections["Loss"].figures == ["figures/loss_curve.png"]
    assert sections["Loss by t"].figures == [] and "Figure not drawn" in sections["Loss by t"].text
    assert "Figure not drawn" in (tmp_path / "report.md").read_text()

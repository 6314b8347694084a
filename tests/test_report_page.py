"""The report page (issue 24): the verdict first, then a table of contents, the conclusions, the findings and the
probes' sections; every number quoted in two places comes from one source; correct HTML (no literal backticks, no
`nan`); captions; figures drawn in child processes give the same PNGs as in this process; a figure that fails to
draw becomes a finding instead of costing the report."""

from __future__ import annotations

import html
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import gendiag
from gendiag.findings import Finding
from gendiag.figures import new_figure
from gendiag.figures.drawing import Drawer
from gendiag.figures.velocity import shows_quivers
from gendiag.flow.projection import principal_plane
from gendiag.quantities.loss import summarise_loss
from gendiag.report import render_run
from gendiag.report.section import ProbeSection
from gendiag.report.verdict import decisive_number, verdict
from gendiag.rules.loss import diverging_title, judge_trend


def _visible_text(page: str) -> str:
    """The page's text outside <code> elements, tags removed."""
    return html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<code>.*?</code>", " ", page, flags=re.S)))


def _hand_findings() -> list[Finding]:
    return [
        Finding("params-stalled", "warning", "The weights of model barely move", "Median update 1.7e-05.",
                {"movement_over_run": 0.0034, "update_ratio_median": 1.7e-05, "lr": float("nan")},
                "Raise the learning rate (Adam: 1e-4 to 1e-3, e.g. 3e-4). Then check the scheduler."),
        Finding("field-ignores-t", "warning", "The field ignores t", "Changes `0.002` as much as the exact field.",
                {"sensitivity_t": 0.0024}, "Feed t to the network.", consequence_of=["params-stalled"]),
        Finding("probe-failed", "info", "Probe x failed", "It raised.", {"probe": "x"}),
    ]


def test_page_order_verdict_contents_conclusion_findings_sections(tmp_path: Path) -> None:
    figure, axis = new_figure(figsize=(3, 2))
    axis.plot([0, 1], [0, 1])
    (tmp_path / "figures").mkdir()
    figure.savefig(tmp_path / "figures/one.png")
    sections = [ProbeSection("Why it fails", "Cause 1: `params-stalled`.", conclusion=True),
                ProbeSection("Gradients", "Text with `code`.", figures=["figures/one.png"],
                             table=pd.DataFrame({"ratio": [0.5, float("nan")]}, index=pd.Index(["a", "b"], name="t")),
                             captions={"figures/one.png": "A line from 0 to 1 (units: none)."})]
    report = render_run(tmp_path, _hand_findings(), sections, header={"case": "hand", "results": {"w": math.nan}})
    page = report.html_path.read_text(encoding="utf-8")
    marks = [page.index(mark) for mark in ("Verdict", "Contents", ">Why it fails<", "Findings (3)", ">Gradients<",
                                           "Run settings and results")]
    assert marks == sorted(marks)
    verdict_part = page[marks[0]:marks[1]]
    assert "This run trains, with 2 warnings to check, from 1 root cause" in verdict_part
    assert "weights move about 0.34% over the run at the median step" in verdict_part
    assert "Raise the learning rate (Adam: 1e-4 to 1e-3, e.g. 3e-4)." in verdict_part  # one sentence, e.g. kept
    assert "field-ignores-t" in verdict_part and "1 more note (info)" in verdict_part
    text = _visible_text(page)
    assert "`" not in text and "nan" not in text.split()
    assert "<code>0.002</code>" in page and "not measured" in text
    assert "<figcaption>A line from 0 to 1 (units: none).</figcaption>" in page
    markdown = report.markdown_path.read_text(encoding="utf-8")
    assert markdown.index("## Verdict") < markdown.index("## Contents") < markdown.index("## Why it fails") \
        < markdown.index("## Findings (3)") < markdown.index("## Gradients")
    assert "| b | not measured |" in markdown and "nan" not in markdown.split()
    assert "[Why it fails](#why-it-fails)" in markdown


def test_decisive_numbers_quote_the_evidence_or_fall_back() -> None:
    stalled, ignores, failed = _hand_findings()
    assert decisive_number(ignores) == "the field changes 0.0024× as much with t as the exact field"
    odd = Finding("params-stalled", "warning", "t", "m", {"update_ratio_median": 2e-5})  # no movement_over_run
    assert decisive_number(odd) == "update ratio median 2e-05"
    assert decisive_number(failed) == ""
    found = verdict([stalled, ignores, failed])
    assert [cause.finding.code for cause in found.causes] == ["params-stalled"]
    assert found.causes[0].explains == ["field-ignores-t"] and found.notes == 1


def test_loss_diverging_title_fits_what_fired() -> None:
    steps = np.arange(1, 201)
    rising = np.linspace(1.0, 5.0, 200)
    summary = summarise_loss(steps, rising)
    summary.update(judge_trend(summary))
    assert summary["trend_up"] and diverging_title(summary) == "The loss grows instead of falling"
    steps = np.arange(1, 301)  # the swing's growth is judged on 300 losses or more
    swinging = 1.0 + 0.01 * np.sin(np.arange(300) * 3.0) * np.linspace(0.2, 5, 300) + np.linspace(0, 0.05, 300)
    summary = summarise_loss(steps, swinging)
    summary.update(judge_trend(summary))
    assert not summary["trend_up"] and summary["oscillation_grows"]
    assert diverging_title(summary).startswith("The loss swings more and more")


def test_quivers_only_where_the_plane_holds_the_data() -> None:
    generator = torch.Generator().manual_seed(0)
    assert shows_quivers(principal_plane(torch.randn(300, 2, generator=generator, dtype=torch.float64)))
    assert not shows_quivers(principal_plane(torch.randn(300, 64, generator=generator, dtype=torch.float64)))
    stretched = torch.randn(300, 64, generator=generator, dtype=torch.float64) * torch.tensor([20.0, 20.0] + [1] * 62,
                                                                                                dtype=torch.float64)
    assert shows_quivers(principal_plane(stretched))


def _line(points: list[float]) -> object:
    figure, axis = new_figure(figsize=(3, 2))
    axis.plot(points)
    axis.set_xlabel("step")
    figure.tight_layout()
    return figure


def _broken() -> object:
    raise RuntimeError("this figure cannot be drawn")


def test_child_drawn_png_equals_the_in_process_one_and_failures_are_kept(tmp_path: Path) -> None:
    got: dict[str, bytes] = {}
    forked, here = Drawer(workers=2, fork=True), Drawer(fork=False)
    forked.draw(lambda: _line([1.0, 3.0, 2.0]), tmp_path / "a.png", lambda png: got.__setitem__("forked", png))
    forked.draw(_broken, tmp_path / "b.png", lambda png: got.__setitem__("broken", png))
    here.draw(lambda: _line([1.0, 3.0, 2.0]), tmp_path / "c.png", lambda png: got.__setitem__("here", png))
    forked.wait()
    assert got["forked"] == got["here"] == (tmp_path / "a.png").read_bytes()
    assert "broken" not in got and [str(error) for _, error in forked.failures] == ["this figure cannot be drawn"]


def test_users_loop_report_quotes_one_number_per_fact(tmp_path: Path) -> None:
    """A flow loop as a user writes it, with a slow data phase and a learning rate far too small: the verdict,
    the finding and the step-time section give the same data-time share; every figure has a caption."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.SGD(net.parameters(), lr=1e-9)

    def moons(n: int) -> torch.Tensor:
        angle = torch.rand(n) * math.pi
        upper = torch.rand(n) < 0.5
        x = torch.where(upper, angle.cos(), 1 - angle.cos())
        y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
        return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2)

    with gendiag.Monitor(tmp_path / "run", task="flow", probes=["timing", "gradients", "loss"]) as mon:
        mon.watch(net, "field", t_arg=None, inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]))
        for step in range(1, 121):
            with mon.phase("data"):
                batch = moons(128)
                time.sleep(0.004)
            noise = torch.randn_like(batch)
            t = torch.rand(128, 1)
            loss = ((net(torch.cat([t * batch + (1 - t) * noise, t], 1)) - (batch - noise)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(step, loss)
    report = mon.finish()
    found = {f.code: f for f in report.findings}
    assert {"data-bottleneck", "params-stalled"} <= found.keys()
    share = f"{found['data-bottleneck'].evidence['data_share']:.0%}"
    markdown = report.markdown_path.read_text(encoding="utf-8")
    verdict_part = markdown[markdown.index("## Verdict"):markdown.index("## Contents")]
    assert f"data preparation takes {share} of the step time" in verdict_part
    assert f"took {share} of the step time" in found["data-bottleneck"].message
    step_time = markdown[markdown.index("## Step time by phase"):]
    assert f"data {share} (" in step_time
    page = report.html_path.read_text(encoding="utf-8")
    assert page.count("<img ") == page.count("<figcaption>") > 0
    assert "`" not in _visible_text(page)

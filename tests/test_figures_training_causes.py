"""Every finding code points at a figure from the run (issue 22), for the training causes of issue 27:
`lr-decayed-to-zero`, `weight-decay-dominates`, `ema-lagging` and `loss-at-baseline`. On each broken loop the
finding names its figure and the figure is in the run folder; on the healthy twin no such figure is drawn (issue 23:
a healthy run's report costs what it did). The loops are users' loops: those of tests/test_optimizer_causes.py,
tests/test_ema.py and tests/test_cause_codes.py, and a flow-matching loop of its own whose warm-up-and-decay
schedule, sized in epochs, is stepped every batch. The figure functions are also checked on given numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import gendiag
from gendiag.figures.ema import ema_figure
from gendiag.figures.optimizer import lr_figure, weights_figure
from gendiag.figures.regression import baseline_figure
from gendiag.quantities.ema import EmaReading
from gendiag.quantities.optimizer import LrSeries
from gendiag.rules.thresholds import EMA_LAG_WARNING, LR_ZERO_FRACTION, WD_LOSS_FLAT, WD_SHRINK
from tests.test_cause_codes import train_ddpm as train_noise_predictor
from tests.test_ema import train as train_with_ema
from tests.test_optimizer_causes import train_ddpm as train_with_scheduler

FIGURES = {"lr-decayed-to-zero": "figures/optimizer_lr.png", "weight-decay-dominates": "figures/optimizer_weights.png",
           "ema-lagging": "figures/ema_copies.png", "loss-at-baseline": "figures/regression_baseline.png"}


def named_and_drawn(run_dir: Path, findings: list, code: str) -> None:
    """The finding `code` names its figure, which is in the run folder and in the report."""
    found = [finding for finding in findings if finding.code == code]
    assert found, {finding.code for finding in findings}
    assert all(finding.figure == FIGURES[code] for finding in found)
    assert (run_dir / FIGURES[code]).is_file()
    assert FIGURES[code] in (run_dir / "report.md").read_text(encoding="utf-8")


def none_drawn(run_dir: Path, findings: list, *codes: str) -> None:
    assert not {finding.code for finding in findings} & set(codes)
    for code in codes:
        assert not (run_dir / FIGURES[code]).exists(), code


# -- the user's flow-matching loop: two moons, a warm-up-and-linear-decay LambdaLR sized in epochs ----------------

EPOCHS = 8
BATCHES = 25


def two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=generator)


def batches(data: torch.Tensor, size: int, generator: torch.Generator):
    order = torch.randperm(len(data), generator=generator)
    for start in range(0, len(data), size):
        yield data[order[start:start + size]]


def train_flow(run_dir: Path, scheduler_per_batch: bool) -> list:
    """Warm-up over 2 epochs then a linear decay to 0 at epoch EPOCHS, stepped every batch by mistake (it reaches 0
    at step EPOCHS) or every epoch as meant; the step counted by the Monitor."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    data = two_moons(BATCHES * 64, generator)
    net = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: min(1.0, (e + 1) / 2) * max(0.0, 1 - e / EPOCHS))
    mon = gendiag.Monitor(run_dir, task="flow", probes=["optimizer", "loss"], strict=True)
    mon.watch(net, optimizer=opt, inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]))
    for _ in range(EPOCHS):
        for x1 in batches(data, 64, generator):
            x0 = torch.randn(x1.shape, generator=generator)
            t = torch.rand(len(x1), 1, generator=generator)
            loss = (net(torch.cat([(1 - t) * x0 + t * x1, t], 1)) - (x1 - x0)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if scheduler_per_batch:
                schedule.step()
            mon.step(loss=loss)
        if not scheduler_per_batch:
            schedule.step()
    return mon.finish().findings


def test_a_decay_sized_in_epochs_stepped_every_batch_is_drawn(tmp_path) -> None:
    findings = train_flow(tmp_path / "broken", scheduler_per_batch=True)
    named_and_drawn(tmp_path / "broken", findings, "lr-decayed-to-zero")
    none_drawn(tmp_path / "broken", findings, "weight-decay-dominates")
    findings = train_flow(tmp_path / "healthy", scheduler_per_batch=False)
    none_drawn(tmp_path / "healthy", findings, "lr-decayed-to-zero", "weight-decay-dominates")


@pytest.mark.slow
def test_the_optimizer_causes_are_drawn_on_their_loops_and_not_on_the_healthy_one(tmp_path) -> None:
    findings = train_with_scheduler(tmp_path / "per-batch", 0, "scheduler-per-batch")
    named_and_drawn(tmp_path / "per-batch", findings, "lr-decayed-to-zero")
    findings = train_with_scheduler(tmp_path / "decay", 0, "weight-decay")
    named_and_drawn(tmp_path / "decay", findings, "weight-decay-dominates")
    findings = train_with_scheduler(tmp_path / "healthy", 0)
    none_drawn(tmp_path / "healthy", findings, "lr-decayed-to-zero", "weight-decay-dominates")


@pytest.mark.slow
def test_a_lagging_ema_is_drawn_and_a_healthy_one_is_not(tmp_path) -> None:
    findings, _ = train_with_ema(tmp_path / "lagging", 0, decay=0.9999)
    named_and_drawn(tmp_path / "lagging", findings, "ema-lagging")
    findings, _ = train_with_ema(tmp_path / "healthy", 0)
    none_drawn(tmp_path / "healthy", findings, "ema-lagging")


@pytest.mark.slow
def test_a_loss_at_the_baseline_is_drawn_and_a_trained_one_is_not(tmp_path) -> None:
    findings = train_noise_predictor(tmp_path / "other-noise", 0, bug="other-noise", steps=300)
    named_and_drawn(tmp_path / "other-noise", findings, "loss-at-baseline")
    findings = train_noise_predictor(tmp_path / "healthy", 0, steps=300)
    none_drawn(tmp_path / "healthy", findings, "loss-at-baseline")


# -- the figures on given numbers ---------------------------------------------------------------------------------


def test_lr_figure_draws_the_rate_its_zero_level_and_the_step_it_fell_there() -> None:
    fell = LrSeries("AdamW #1", steps=list(range(100)), values=[1e-3 * max(0.0, 1 - s / 20) for s in range(100)])
    figure = lr_figure([fell], LR_ZERO_FRACTION)
    rate, level, first = figure.axes[0].get_lines()
    assert list(level.get_ydata()) == [pytest.approx(LR_ZERO_FRACTION * 1e-3)] * 2
    assert list(first.get_xdata()) == [20, 20]  # 1 - 20/20 = 0: the first reading below the level
    assert min(rate.get_ydata()) > 0  # readings of 0 drawn on the log axis' floor
    assert figure.axes[0].get_yscale() == "log"


def test_weights_figure_draws_the_norm_and_the_loss_against_the_rules_lines() -> None:
    steps = list(range(0, 500, 10))
    norms = [10.0 * 0.97 ** (i / 2) for i in range(len(steps))]
    shrink = {"peak_norm": 10.0, "peak_step": 0, "end_norm": norms[-1], "shrink": 1 - norms[-1] / 10,
              "loss_at_peak": 1.0, "loss_at_end": 0.98}
    figure = weights_figure(steps, norms, [1.0] * len(steps), shrink)
    left, right = figure.axes
    assert left.get_lines()[2].get_ydata()[0] == pytest.approx((1 - WD_SHRINK) * 10)
    assert right.get_lines()[1].get_ydata()[0] == pytest.approx(1 - WD_LOSS_FLAT)
    assert list(left.get_lines()[0].get_ydata()) == norms


def test_ema_figure_draws_both_distances_from_zero_at_the_watch() -> None:
    readings = [EmaReading(step, 0.01 * step, 0.1 * step, 0.09 * step, 5.0) for step in (10, 100, 400)]
    figure = ema_figure([("ema", "model", 0, readings)])
    network, copy, lag, _ = figure.axes[0].get_lines()
    assert list(network.get_xdata()) == [0, 10, 100, 400]
    assert list(network.get_ydata()) == pytest.approx([0, 1, 10, 40])
    assert list(copy.get_ydata()) == pytest.approx([0, 0.1, 1, 4])
    assert list(lag.get_ydata()) == pytest.approx([EMA_LAG_WARNING * d for d in (0, 1, 10, 40)])


@pytest.mark.parametrize("summed", [False, True])
def test_baseline_figure_draws_the_loss_at_the_mean_in_the_losses_units(summed: bool) -> None:
    scale = 2.0 if summed else 1.0  # a loss summed over a row's two elements sits at 2
    evidence = {"model": "model", "loss": 1.01 * scale, "loss_per_element": 1.01, "output_spread": 1e-4,
                "threshold_spread": 0.05, "noise_band": 0.15, "since_step": 225, "last_step": 299}
    losses = [(step, 1.01 * scale) for step in range(300)]
    spread = [(step, 1e-4) for step in range(300)]
    figure = baseline_figure(losses, spread, evidence)
    left, right = figure.axes
    assert left.get_lines()[1].get_ydata()[0] == pytest.approx(scale)
    assert right.get_lines()[1].get_ydata()[0] == pytest.approx(0.05 * 1.01)
    assert len(right.get_lines()[0].get_xdata()) == 300

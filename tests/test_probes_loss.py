"""The loss and loss-by-t probes: each finding fires on a small broken loop and stays silent on a healthy one;
the numbers behind them (window trend, per-bin shares, tail exponent) are right on series with a known answer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gendiag.context import ProbeContext
from gendiag.monitor import LEFT_OUT
from gendiag.probes import loss_by_t
from gendiag.probes.base import StepRecord
from gendiag.probes.thinning import LogStride
from gendiag.quantities.loss import summarise_loss
from gendiag.quantities.loss_by_t import summarise_loss_by_t, time_scale
from gendiag.rules.loss import judge_trend, swing_growth_needed
from gendiag.rules.loss_by_t import judge_bins
from gendiag.sinks.scalars import ScalarTable
from gendiag.sinks.tensorboard import TensorBoardSink
from tests.loops import DiffusionSetup, FlowSetup, codes, train_ddpm, train_flow

PROBES = ["loss", "loss_by_t"]
LOSS_CODES = {"loss-nonfinite", "loss-diverging", "loss-t-imbalance", "target-explodes"}


def finding(report, code: str):
    return next(f for f in report.findings if f.code == code)


def probe_data(run_dir: Path) -> dict:
    return json.loads((run_dir / "probe_data.json").read_text())


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("healthy")
    return run_dir, train_flow(run_dir, FlowSetup(steps=200), probes=PROBES, sample=False)


@pytest.fixture(scope="module")
def flagship(tmp_path_factory: pytest.TempPathFactory):
    """The failed project's loss: the network fed x0 and regressed on (x1 - x0)/(1 - t), Adam at 1e-6."""
    run_dir = tmp_path_factory.mktemp("flagship")
    setup = FlowSetup(steps=200, inputs="x0", target="over_1mt", lr=1e-6)
    return run_dir, train_flow(run_dir, setup, probes=PROBES, sample=False)


def test_healthy_flow_matching_has_no_loss_findings(healthy) -> None:
    run_dir, report = healthy
    assert not codes(report, ("critical", "warning", "info")) & LOSS_CODES
    data = probe_data(run_dir)
    assert data["loss"]["finite"] == 200 and not data["loss"]["diverging"]
    assert max(data["loss_by_t"]["loss_share"]) < 0.25 and max(data["loss_by_t"]["variance_share"]) < 0.35
    near_one = data["loss_by_t"]["tails"][0]
    assert near_one["end"] == "t -> 1" and abs(near_one["slope"]) < 0.4


def test_sections_figures_and_logged_series(healthy) -> None:
    run_dir, report = healthy
    titles = {s.title: s for s in report.sections}
    assert {"Loss", "Loss by t"} <= set(titles)
    assert titles["Loss"].figures and all((run_dir / f).is_file() for f in titles["Loss"].figures)
    # the loss curve is the overview, drawn on every run; loss by t shows findings that do not hold here
    assert not titles["Loss by t"].figures and LEFT_OUT in titles["Loss by t"].text
    assert not (run_dir / "figures" / "loss_by_t.png").exists()
    assert list(titles["Loss by t"].table["samples"]) and titles["Loss by t"].table["share of loss"].sum() == \
        pytest.approx(1.0)
    tags = set(pd.read_csv(run_dir / "metrics.csv")["tag"])
    assert {"loss/running_mean", "loss/running_std"} <= tags
    assert any(tag.startswith("loss_by_t/mean/t0.9-1.0") for tag in tags)


def test_target_explodes_and_imbalance_fire_on_the_flagship_loss(flagship) -> None:
    run_dir, report = flagship
    explodes = finding(report, "target-explodes")
    assert explodes.severity == "critical" and explodes.evidence["end"] == "t -> 1"
    assert -2.3 < explodes.evidence["exponent"] < -1.7  # |(x1 - x0)/(1 - t)|² grows like (1 - t)^-2
    assert explodes.evidence["ratio_to_median"] > 100 and explodes.figure == "figures/loss_by_t.png"
    imbalance = finding(report, "loss-t-imbalance")
    assert imbalance.severity == "warning" and imbalance.evidence["worst_loss_bin"] == "0.9–1.0"
    assert imbalance.evidence["worst_loss_share"] > 0.99
    assert (run_dir / imbalance.figure).is_file()


def test_diverging_fires_when_the_learning_rate_keeps_growing(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(steps=200, lr_growth=1.04), probes=["loss"], sample=False)
    diverging = finding(report, "loss-diverging")
    assert diverging.severity == "warning"
    assert diverging.evidence["peak_median"] > 2 * diverging.evidence["best_median"]
    assert "loss-nonfinite" not in codes(report)


def test_nonfinite_fires_with_the_first_bad_step(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(steps=60, optimizer="sgd", lr=1.0), probes=PROBES, sample=False)
    nonfinite = finding(report, "loss-nonfinite")
    assert nonfinite.severity == "critical"
    first = nonfinite.evidence["first_nonfinite_step"]
    assert 1 < first <= 60 and nonfinite.evidence["last_finite_step"] == first - 1
    assert nonfinite.evidence["nonfinite_steps"] == 60 - first + 1
    assert math.isfinite(nonfinite.evidence["last_finite_loss"])


def test_healthy_ddpm_with_integer_timesteps_is_silent(tmp_path: Path) -> None:
    report = train_ddpm(tmp_path, DiffusionSetup(steps=200), probes=PROBES)
    assert not codes(report) & LOSS_CODES
    data = probe_data(tmp_path)["loss_by_t"]
    assert data["samples"] > 0 and all(np.isfinite(data["bin_mean"]))
    assert data["bin_mean"][0] > 10 * data["bin_mean"][-1]  # epsilon loss: hardest at low noise (small t)


# -- the loss rules on series with a known answer -------------------------------------------------------------------


def summarise(values: np.ndarray) -> dict:
    summary = summarise_loss(np.arange(1, len(values) + 1), values)
    return {**summary, **judge_trend(summary)}


def test_trend_rules_on_known_series() -> None:
    rng = np.random.default_rng(0)
    steps = np.arange(400)
    falling = 2.0 + 3.0 * np.exp(-steps / 50) + 0.3 * rng.standard_normal(400)
    assert not summarise(falling)["diverging"]
    rising = falling + np.where(steps > 200, (steps - 200) * 0.05, 0.0)
    assert summarise(rising)["trend_up"]
    growing_swing = 2.0 + 0.05 * (1 + steps / 20) * (-1.0) ** steps
    summary = summarise(growing_swing)
    assert summary["oscillation_grows"] and summary["oscillation_growth"] > 4
    negative_flat = -3.0 + 0.2 * rng.standard_normal(400)  # a loss below zero (a likelihood, a critic) that is flat
    assert not summarise(negative_flat)["diverging"]


def test_a_noisy_flat_loss_of_few_points_is_not_called_oscillating() -> None:
    """A flat loss seen at 100 steps (an attached run's recorded rounds): ten windows of ten losses, whose median
    step-to-step changes vary by chance, often 4x; on so few the growth must pass what noise reaches but once in
    2,000 series (13x), which a swing growing 4% a step does; on 300 losses, 4x."""
    rng = np.random.default_rng(0)
    summaries = [summarise(2.0 + 0.3 * rng.standard_normal(100)) for _ in range(200)]
    by_chance = [s for s in summaries if s["oscillation_growth"] >= 4 and s["calm_before_last"]
                 and s["last_median"] > s["best_median"]]  # what the swing's growth alone would call oscillating
    assert len(by_chance) >= 5 and not any(s["oscillation_grows"] for s in by_chance)
    steps = np.arange(100)
    assert summarise(2.0 + 0.001 * steps + 0.05 * 1.04 ** steps * (-1.0) ** steps)["oscillation_grows"]
    assert swing_growth_needed(100) == pytest.approx(13.3) and swing_growth_needed(300) == 4.0
    steps = np.arange(300)
    assert summarise(2.0 + 0.05 * (1 + steps / 20) * (-1.0) ** steps)["oscillation_grows"]


def test_short_runs_are_not_judged() -> None:
    assert not summarise(np.linspace(1.0, 100.0, 20))["diverging"]


@settings(deadline=None)
@given(st.integers(min_value=2, max_value=400), st.integers(min_value=1, max_value=50),
       st.integers(min_value=1, max_value=50_000))
def test_log_stride_is_even_and_bounded(budget: int, first: int, steps: int) -> None:
    stride = LogStride(budget=budget, first=first)
    taken = [s for s in range(1, steps + 1) if stride.take(s)]
    assert all(s % first == 0 for s in taken)
    assert len(taken) <= steps // first
    doublings = max(0.0, math.log2(max(steps / (first * budget), 1.0)))
    assert len(taken) <= budget + math.ceil(budget / 2) * (doublings + 1)


# -- the loss-by-t statistics on synthetic batches -----------------------------------------------------------------


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> ProbeContext:
    run_dir = tmp_path_factory.mktemp("ctx")
    ctx = ProbeContext(run_dir=run_dir, task="flow", facts={}, tb=TensorBoardSink(run_dir / "tb"),
                       table=ScalarTable())
    yield ctx
    ctx.tb.close()


def feed(ctx: ProbeContext, batches: list[dict]) -> dict:
    """Run a fresh loss_by_t probe on synthetic steps and return its summary (no figure)."""
    probe = loss_by_t.LossByTProbe()
    for step, batch in enumerate(batches, start=1):
        loss = batch.pop("loss")
        probe.on_step(ctx, StepRecord(step=step, loss=float(loss.mean()), t=batch.pop("t"),
                                      per_sample_loss=loss, tensors=batch))
    chunks, chunk_steps, has_target = probe.bins.snapshot(len(batches), None)
    return judge_bins(summarise_loss_by_t(chunks, chunk_steps, has_target))


@settings(max_examples=12, deadline=None)
@given(exponent=st.floats(min_value=-2.5, max_value=0.5), seed=st.integers(0, 2**16))
def test_tail_exponent_is_recovered(context: ProbeContext, exponent: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(130):
        t = torch.rand(256, generator=generator)
        noise = torch.empty(256).exponential_(generator=generator)  # a chi-square-like spread per sample
        batches.append({"t": t, "loss": (1 - t).clamp(min=1e-6) ** exponent * noise})
    tail = feed(context, batches)["tails"][0]
    assert tail["slope"] == pytest.approx(exponent, abs=0.2)
    if exponent < -1.0:
        assert tail["explodes"]
    if exponent > -0.5:
        assert not tail["explodes"]


def test_target_norm_is_fitted_instead_of_the_loss(context: ProbeContext) -> None:
    """A network that fits an exploding target perfectly has a flat loss; the target's own size still shows it."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(130):
        t = torch.rand(256, generator=generator)
        batches.append({"t": t, "loss": torch.full((256,), 0.5), "target_norm": 1 / (1 - t).clamp(min=1e-6)})
    summary = feed(context, batches)
    tail = summary["tails"][0]
    assert tail["quantity"] == "squared target size" and tail["explodes"] and tail["severity"] == "critical"
    assert tail["slope"] == pytest.approx(-2.0, abs=0.2)
    assert not summary["imbalanced"]


def test_integer_timesteps_are_scaled_by_the_schedule_or_a_power_of_ten(context: ProbeContext) -> None:
    assert time_scale(torch.tensor([3, 999, 10]), None) == 999
    assert time_scale(torch.tensor([3, 640]), None) == 999
    assert time_scale(torch.tensor([0.2, 0.9]), None) == 1.0
    assert time_scale(torch.tensor([5]), torch.ones(50)) == 49
    assert time_scale(torch.tensor([0.5, 0.99]), torch.ones(50)) == 1.0  # float t in [0, 1] kept
    batches = [{"t": torch.arange(1000), "loss": torch.ones(1000)} for _ in range(2)]
    summary = feed(context, batches)
    assert summary["samples"] == 2000 and all(c == pytest.approx(0.1) for c in summary["loss_share"])


def test_mismatched_t_and_loss_sizes_are_rejected(context: ProbeContext) -> None:
    probe = loss_by_t.LossByTProbe()
    record = StepRecord(step=1, loss=1.0, t=torch.rand(8), per_sample_loss=torch.rand(7))
    with pytest.raises(ValueError, match="t has 8 values but per_sample_loss has 7 at step 1"):
        probe.on_step(context, record)


@pytest.mark.slow
def test_healthy_flow_matching_with_every_default_probe_has_no_warning(tmp_path: Path) -> None:
    """The whole default probe set (all helpers' probes) on a healthy loop: no warning, no critical finding."""
    report = train_flow(tmp_path, FlowSetup(steps=300), strict=False)
    assert not codes(report), [(f.code, f.message) for f in report.findings]

"""train-sample-input-mismatch: fires when training feeds the source batch at every t (the flagship bug), stays
silent on a healthy flow-matching loop; the energy test and the reservoir behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gendiag
from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.metrics.energy import energy_coefficient, energy_distance, energy_test
from gendiag.rules.thresholds import INPUTS_CRITICAL_RATIO as CRITICAL_RATIO
from gendiag.rules.thresholds import INPUTS_MIN_COEFFICIENT as MIN_COEFFICIENT
from gendiag.rules.thresholds import INPUTS_STATIC_RATIO as STATIC_RATIO
from gendiag.rules.thresholds import INPUTS_WARNING_RATIO as WARNING_RATIO
from tests.loops import FlowSetup, codes, train_flow


def report_state(run_dir: Path) -> dict:
    """The inputs probe's summary as saved in the run folder."""
    return json.loads((run_dir / "probe_data.json").read_text())["inputs"]


def direct_energy(a: torch.Tensor, b: torch.Tensor) -> float:
    """2E|A-B| - E|A-A'| - E|B-B'| with explicit pair loops over i != j."""
    n, m = len(a), len(b)
    cross = sum(float((a[i] - b[j]).norm()) for i in range(n) for j in range(m)) / (n * m)
    within_a = sum(float((a[i] - a[j]).norm()) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    within_b = sum(float((b[i] - b[j]).norm()) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return max(2 * cross - within_a - within_b, 0.0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(2, 9), m=st.integers(2, 9), dim=st.integers(1, 4),
       shift=st.floats(0, 3))
def test_energy_distance_and_test_equal_the_pairwise_formula(seed: int, n: int, m: int, dim: int, shift: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    b = torch.randn(m, dim, generator=gen, dtype=torch.float64) + shift
    direct = direct_energy(a, b)
    assert energy_distance(a, b) == pytest.approx(direct, abs=1e-9)
    assert energy_test(a, b, permutations=0)[0] == pytest.approx(direct, abs=1e-9)  # its own pooled computation


def test_energy_test_separates_shifted_samples_and_not_equal_ones() -> None:
    gen = torch.Generator().manual_seed(0)
    same = energy_test(torch.randn(150, 3, generator=gen), torch.randn(150, 3, generator=gen), 200, gen)
    shifted = energy_test(torch.randn(150, 3, generator=gen), torch.randn(150, 3, generator=gen) + 1.0, 200, gen)
    assert same[1] > 0.01 and shifted[1] < 0.01
    assert shifted[0] > 5 * same[0]
    with pytest.raises(ValueError, match="at least 2 rows"):
        energy_distance(torch.randn(1, 2), torch.randn(5, 2))


def test_reservoir_keeps_a_bounded_uniform_sample() -> None:
    reservoir = Reservoir(capacity=500, seed=0)
    for start in range(0, 10_000, 250):
        values = torch.arange(start, start + 250, dtype=torch.float32)
        reservoir.add(values[:, None].expand(250, 3), times=values / 10_000)
    assert len(reservoir) == 500 and reservoir.seen == 10_000 and reservoir.rows.shape == (500, 3)
    kept = reservoir.rows[:, 0]
    assert len(torch.unique(kept)) == 500
    torch.testing.assert_close(reservoir.times, kept / 10_000)
    quarters = torch.histc(kept, bins=4, min=0, max=10_000)
    assert float(quarters.min()) > 90 and float(quarters.max()) < 160
    with pytest.raises(ValueError, match="rows of 2 numbers"):
        reservoir.add(torch.zeros(3, 2))
    assert capacity_for(2, 4096, 1024) == 4096 and capacity_for(4096, 4096, 1024) == 512


def test_fires_when_training_feeds_the_source_batch_at_every_t(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(inputs="x0"), probes=["inputs"])
    found = [f for f in report.findings if f.code == "train-sample-input-mismatch"]
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "critical" and finding.evidence["worst_ratio"] >= CRITICAL_RATIO
    low, high = finding.evidence["worst_t_range"]
    assert low >= 0.5 and high > 0.9
    assert finding.evidence["worst_p_value"] < 0.01 and finding.evidence["data_source_energy_distance"] > 0
    assert len(finding.evidence["ratio_by_bin"]) == 5
    assert finding.evidence["train_change_over_t"] < STATIC_RATIO
    assert "do not follow t" in finding.title and "hardly change with t" in finding.message
    assert (tmp_path / finding.figure).is_file()
    saved = json.loads((tmp_path / "findings.json").read_text())
    assert any(f["code"] == "train-sample-input-mismatch" and f["evidence"]["worst_ratio"] for f in saved["findings"])


def test_silent_on_a_healthy_flow_matching_loop(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(), probes=["inputs"], figures="all")
    assert "train-sample-input-mismatch" not in codes(report, ("critical", "warning", "info"))
    section = next(s for s in report.sections if s.title == "Training versus sampling inputs")
    assert float(section.table["ratio"].max()) < WARNING_RATIO
    assert report_state(tmp_path)["t_change"]["ratio"] > 0.5
    assert (tmp_path / section.figures[0]).is_file()
    metrics = (tmp_path / "metrics.csv").read_text()
    assert "inputs/mismatch_t" in metrics


class TimedLinear(torch.nn.Module):
    """u(x, t) = Linear([x, t]): the smallest network with an x and a t argument."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([x, t[:, None]], dim=1))


def test_without_observed_batches_it_reports_unscaled_and_finds_nothing(tmp_path: Path) -> None:
    """A loop that never calls observe_data: distances are shown, but there is no scale to judge them by."""
    model = TimedLinear()
    gen = torch.Generator().manual_seed(0)
    with gendiag.Monitor(tmp_path, task="flow", probes=["inputs"], strict=True) as mon:
        mon.watch(model, name="model")
        for step in range(1, 40):
            model(torch.randn(64, 2, generator=gen), torch.rand(64, generator=gen))
            mon.step(step, 0.0)
        with mon.sampling():
            for k in range(10):
                model(torch.randn(64, 2, generator=gen) + 3, torch.full((64,), k / 10))
    report = mon.finish()
    assert not [f for f in report.findings if f.code == "train-sample-input-mismatch"]
    section = next(s for s in report.sections if s.title == "Training versus sampling inputs")
    assert "unscaled" in section.text and float(section.table["energy"].max()) > 1.0


def test_energy_coefficient_on_hand_samples() -> None:
    """Two points at 0 against two at 1: E|A-B| = 1 and the within terms are 0, so the energy distance is 2 and
    the coefficient 2 / (2 * 1) = 1; a sample against itself gives 0."""
    a, b = torch.zeros(2, 1), torch.ones(2, 1)
    assert energy_coefficient(a, b, energy_distance(a, b)) == pytest.approx(1.0)
    assert energy_coefficient(a, a, energy_distance(a, a)) == 0.0


def _over_dispersed_sampler(tmp_path: Path, widen: float) -> list:
    """Training inputs on the path x_t = (1 - t) x1 + t z from data x1 ~ N(0, 1.2^2 I) to noise z ~ N(0, I);
    sampling inputs the same, widened by `widen`. The data lies close to the source, so the data-source distance
    that scales the ratio is small."""
    model = TimedLinear()
    gen = torch.Generator().manual_seed(0)

    def path(n: int, t: torch.Tensor) -> torch.Tensor:
        return (1 - t[:, None]) * torch.randn(n, 2, generator=gen) * 1.2 + t[:, None] * torch.randn(n, 2, generator=gen)

    with gendiag.Monitor(tmp_path, task="diffusion", probes=["inputs"], strict=True) as mon:
        mon.watch(model, name="model")
        for step in range(1, 400):
            mon.observe_data(torch.randn(64, 2, generator=gen) * 1.2, role="data")
            mon.observe_data(torch.randn(64, 2, generator=gen), role="source")
            t = torch.rand(64, generator=gen)
            model(path(64, t), t)
            mon.step(step, 0.0)
        with mon.sampling():
            for k in range(20):
                t = torch.full((128,), (k + 0.5) / 20)
                model(path(128, t) * widen, t)
    return [f for f in mon.finish().findings if f.code == "train-sample-input-mismatch"]


def test_a_small_gap_beside_a_source_close_to_the_data_is_only_info(tmp_path: Path) -> None:
    """Sampling inputs a little wider than the training inputs, where the data lies close to the source: a ratio
    far above the threshold, yet immaterial on the inputs' own scale (as a healthy DDPM's mid-t gap on the unit-scale
    swiss roll): info, not a warning. Twice as wide is material: critical."""
    assert _over_dispersed_sampler(tmp_path / "none", widen=1.0) == []
    small = _over_dispersed_sampler(tmp_path / "small", widen=1.3)
    assert [f.severity for f in small] == ["info"]
    assert small[0].evidence["worst_ratio"] > 2 * WARNING_RATIO and small[0].evidence["worst_coefficient"] < MIN_COEFFICIENT
    assert "own scale" in small[0].message
    large = _over_dispersed_sampler(tmp_path / "large", widen=2.0)
    assert [f.severity for f in large] == ["critical"] and large[0].evidence["worst_coefficient"] >= MIN_COEFFICIENT

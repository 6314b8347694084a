"""The timing probe: `data-bottleneck` fires when a slow loader takes most of the step, stays silent on a healthy
loop; the shares per phase add up and a loop without phases still gets its step time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

import gendiag
from tests.loops import FlowSetup, codes, train_flow


def timing_data(run_dir: Path) -> dict:
    return json.loads((run_dir / "probe_data.json").read_text())["timing"]


def test_slow_data_phase_is_a_bottleneck(tmp_path: Path) -> None:
    # a 100 ms loader against a step of a few ms: the data phase dominates even on a machine busy enough to make
    # the step 10x slower (a 10 ms loader did not, under CI beside another training job)
    report = train_flow(tmp_path, FlowSetup(steps=20, data_delay=0.1), probes=["timing"], sample=False)
    [finding] = [f for f in report.findings if f.code == "data-bottleneck"]
    assert finding.severity == "warning" and (tmp_path / finding.figure).is_file()
    assert finding.evidence["data_share"] > 0.5 and finding.evidence["steps_measured"] == 19
    assert finding.evidence["ms_per_step"]["data"] >= 100.0
    assert set(finding.evidence["shares"]) == {"data", "step", "other"}


def test_healthy_loop_is_silent_and_shares_add_up(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(steps=60), probes=["timing"], sample=False)
    assert "data-bottleneck" not in codes(report)
    data = timing_data(tmp_path)
    assert sum(data["shares"].values()) == pytest.approx(1.0, abs=1e-6)
    assert sum(data["ms_per_step"].values()) == pytest.approx(data["ms_per_step_total"], rel=1e-6)
    section = next(s for s in report.sections if s.title == "Step time by phase")
    assert list(section.table.index) == ["data", "step", "other"]


def test_a_loop_without_phases_gets_its_step_time(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path, probes=["timing"], strict=True) as mon:
        for step in range(1, 21):
            time.sleep(0.002)
            mon.step(step, float(step))
    data = timing_data(tmp_path)
    assert data["shares"] == {"other": pytest.approx(1.0)} and not data["bottleneck"]
    assert data["ms_per_step_median"] >= 2.0 and data["steps_measured"] == 19


def test_loading_phases_count_as_data_whatever_their_case(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path, probes=["timing"], strict=True) as mon:
        for step in range(1, 16):
            with mon.phase("Load_Batch"):
                time.sleep(0.006)
            with mon.phase("train"):
                torch.ones(10).sum()
            mon.step(step, 1.0)
    assert "data-bottleneck" in codes(mon.finish())
    assert timing_data(tmp_path)["data_phases"] == ["Load_Batch"]

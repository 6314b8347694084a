"""sampler-state-frozen: a sampler that drops each step's result, or ignores the step count, is caught on the
exact field; Euler and Heun pass and land on the data."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from gendiag.quantities.sampler import STEP_COUNTS, RecordingField
from reference_models.solvers import euler, heun
from tests.loops import FlowSetup, train_flow

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
QUICK = FlowSetup(steps=60)


def assigned_to_a_new_variable(field: Field, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """The rewrite's bug: the step's result goes to a new name, so the state never moves."""
    x = x0
    for k in range(steps):
        x_next = x + field(x, torch.full((x.shape[0],), k / steps)) / steps  # noqa: F841
    return x


def returns_one_step_from_the_start(field: Field, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Moves the output, but every call sees the start: x_new = x0 + h*u(x0, t), returned at the end."""
    x_new = x0
    for k in range(steps):
        x_new = x0 + field(x0, torch.full((x0.shape[0],), k / steps)) / steps
    return x_new


def fixed_step_count(field: Field, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Ignores `steps` and always takes 50 Euler steps."""
    return euler(field, x0, 50)


def sampler_finding(report):  # noqa: ANN001, ANN201
    return [f for f in report.findings if f.code == "sampler-state-frozen"]


def test_recording_field_measures_how_far_the_state_moved() -> None:
    recorder = RecordingField(lambda x, t: torch.ones_like(x))
    out = euler(recorder, torch.full((4, 2), 2.0), steps=4)
    torch.testing.assert_close(out, torch.full((4, 2), 3.0))
    assert recorder.times == [0.0, 0.25, 0.5, 0.75]
    assert recorder.state_changes() == pytest.approx([0.0, 0.125, 0.25, 0.375])


@pytest.mark.parametrize("sampler", [euler, heun])
def test_correct_samplers_pass_and_reach_the_data_on_the_exact_field(tmp_path: Path, sampler: Callable) -> None:
    report = train_flow(tmp_path, QUICK, probes=["sampler"], sampler=sampler)
    assert not sampler_finding(report)
    table = next(s for s in report.sections if s.title == "Sampler check").table
    exact = table.loc["exact"].set_index("steps")
    assert float(exact.loc[STEP_COUNTS[-1], "distance_to_data"]) < 0.05
    assert (exact["field_calls"] >= exact.index).all()


def test_fires_when_the_state_is_assigned_to_a_new_variable(tmp_path: Path) -> None:
    report = train_flow(tmp_path, QUICK, probes=["sampler"], sampler=assigned_to_a_new_variable)
    (finding,) = sampler_finding(report)
    assert finding.severity == "critical" and finding.evidence["field"] == "exact"
    assert max(finding.evidence["largest_state_change"]) == 0.0 and max(finding.evidence["output_change"]) == 0.0
    assert "same state" in finding.message and "returned its start unchanged" in finding.message
    assert (tmp_path / finding.figure).is_file()


def test_fires_when_every_call_sees_the_start_even_if_the_output_moves(tmp_path: Path) -> None:
    report = train_flow(tmp_path, QUICK, probes=["sampler"], sampler=returns_one_step_from_the_start)
    (finding,) = sampler_finding(report)
    assert "same state" in finding.message and min(finding.evidence["output_change"]) > 0.01


def test_fires_when_the_output_does_not_depend_on_the_step_count(tmp_path: Path) -> None:
    report = train_flow(tmp_path, QUICK, probes=["sampler"], sampler=fixed_step_count)
    (finding,) = sampler_finding(report)
    assert "same output with 1 and 64 steps" in finding.message
    assert max(finding.evidence["output_difference_to_most_steps"]) == 0.0


def test_uses_observed_source_rows_without_a_source_fact_and_skips_without_a_sampler(tmp_path: Path) -> None:
    report = train_flow(tmp_path / "a", QUICK, probes=["sampler"], sampler=assigned_to_a_new_variable, source=None)
    assert sampler_finding(report)
    skipped = train_flow(tmp_path / "b", QUICK, probes=["sampler"], sample=False)
    assert not sampler_finding(skipped)
    assert "Not run" in next(s for s in skipped.sections if s.title == "Sampler check").text

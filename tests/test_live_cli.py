"""`gendiag run CASE --stop-on critical`: the run ends at the live check that finds a critical finding, with a
report that names the finding and the step, findings.json entries that carry first_step, the checkpoint kept, and
exit status 0. The case: the tutorial DDPM schedule that never reaches noise, known from the first check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gendiag.checkpoint import CHECKPOINT
from gendiag.cli import main
from gendiag.live import JOURNAL

SMALL = ["training.steps=400", "sampling.n_samples=200", "data.heldout=200", "model.hidden=32", "model.depth=2",
         "probes.check_every=20", "probes.check_seconds=0", "run.checkpoint_every=50"]


@pytest.mark.slow
def test_stop_on_critical_ends_the_run_with_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "ddpm_swissroll", "--stop-on", "critical", "--out", str(tmp_path), "--threads", "1"]
    assert main(argv + [arg for setting in SMALL for arg in ("--set", setting)]) == 0
    out = " ".join(capsys.readouterr().out.split(" \n"))  # the console wraps long lines at its width
    assert "step 20  CRITICAL schedule-not-reaching-noise:" in out
    assert "stopped on critical finding schedule-not-reaching-noise at step 20 (--stop-on critical)" in out
    assert "schedule-not-reaching-noise known at step 20 of 400 (5%)" in out
    run_dir = next((tmp_path / "ddpm_swissroll").iterdir())
    header = json.loads((run_dir / "run.json").read_text())
    assert header["status"] == "stopped on critical finding schedule-not-reaching-noise at step 20 (--stop-on critical)"
    report = (run_dir / "report.md").read_text()
    assert "> **Partial report**: stopped on critical finding schedule-not-reaching-noise at step 20" in report
    assert "first seen at step 20 of 400 (5%)" in report
    saved = json.loads((run_dir / "findings.json").read_text())
    assert saved["steps"] == 400 and all(isinstance(f["first_step"], int) for f in saved["findings"])
    assert next(f for f in saved["findings"] if f["code"] == "schedule-not-reaching-noise")["first_step"] == 20
    assert (run_dir / CHECKPOINT).is_file()  # written at the stop, so the run can be resumed from there
    assert [json.loads(line)["code"] for line in (run_dir / JOURNAL).read_text().splitlines()][:1] == \
        ["schedule-not-reaching-noise"]


def test_stop_on_takes_only_warning_or_critical(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["run", "ddpm_swissroll", "--stop-on", "info"])
    assert stop.value.code == 2
    assert "invalid choice: 'info' (choose from 'warning', 'critical')" in capsys.readouterr().err

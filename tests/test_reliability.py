"""Faults lose nothing: SIGTERM gives a partial report and exit 143, a resumed run equals the uninterrupted one
step for step, a non-finite loss stops cleanly with the last good checkpoint kept, unsafe checkpoints are refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from pydantic import Field

from gendiag.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from gendiag.config import Section, load_case, load_resolved
from gendiag.recipes import RECIPES, Recipe, register
from gendiag.runner import run_case

ROOT = Path(__file__).resolve().parent.parent
CASE = ROOT / "cases" / "pointcloud_moons.yaml"
TINY = ["sampling.n_samples=200", "sampling.steps=10", "data.heldout=200", "model.hidden=32", "model.depth=2",
        "training.observe_every=10", "probes.set=[]"]


def losses(run_dir: Path) -> pd.Series:
    metrics = pd.read_csv(run_dir / "metrics.csv")
    chosen = metrics[metrics["tag"] == "loss/train"]
    return pd.Series(chosen["value"].to_numpy(), index=chosen["step"].to_numpy())


def test_resumed_run_equals_uninterrupted_run_step_for_step(tmp_path: Path) -> None:
    settings = TINY + ["training.steps=40", "run.checkpoint_every=10"]
    whole = run_case(load_case(CASE, overrides=settings), out_root=tmp_path / "whole")

    def stop_at_25(step: int, info: dict[str, float]) -> None:
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_case(load_case(CASE, overrides=settings), out_root=tmp_path / "cut", progress=stop_at_25)
    cut_dir = next((tmp_path / "cut" / "pointcloud_moons").iterdir())
    assert "stopped by SIGINT at step 25" in json.loads((cut_dir / "run.json").read_text())["status"]
    assert load_checkpoint(cut_dir / CHECKPOINT)["step"] == 20
    resumed = run_case(load_resolved(cut_dir), resume_dir=cut_dir)
    expected, got = losses(whole.run_dir), losses(resumed.run_dir)
    assert list(got.index) == list(range(1, 41))
    assert got.to_numpy().tolist() == expected.to_numpy().tolist()
    assert resumed.results["w2"] == whole.results["w2"]
    assert json.loads((cut_dir / "run.json").read_text())["resumed_from_step"] == 20


@pytest.mark.slow
def test_sigterm_writes_partial_report_and_exits_143(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "gendiag", "run", str(CASE), "--out", str(tmp_path),
               "--set", "training.steps=1000000", "--set", "run.checkpoint_every=20", *sum((["--set", s] for s in TINY), [])]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(f"pointcloud_moons/*/{CHECKPOINT}")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    run_dir = next((tmp_path / "pointcloud_moons").iterdir())
    status = json.loads((run_dir / "run.json").read_text())["status"]
    assert status.startswith("stopped by SIGTERM at step")
    step = int(status.rsplit(" ", 1)[1])
    assert "Partial report" in (run_dir / "report.html").read_text()
    assert losses(run_dir).index.max() == step


class _Data(Section):
    blow_up_at: int = Field(5, ge=1)


class _Empty(Section):
    steps: int = 10


def _nan_recipe(case, ctx) -> dict:
    """A real loop whose loss turns infinite at a chosen step (weights scaled up to overflow)."""
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = ctx.generator(1)
    mon = ctx.start_monitor("generic")
    done = ctx.track({"model": model}, {"sgd": optimizer}, {"data": gen})
    for step in range(done + 1, case.training.steps + 1):
        x = torch.randn(8, 2, generator=gen)
        if step == case.data.blow_up_at:
            with torch.no_grad():
                model.weight.mul_(1e30)
        loss = model(x).pow(2).mean() * (1e30 if step >= case.data.blow_up_at else 1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        mon.step(step, loss)
        ctx.progress(step, {"loss": loss.item()})
    return {"steps": case.training.steps}


if "test_nan" not in RECIPES:
    register(Recipe("test_nan", "loss turns infinite", {"data": _Data, "model": _Empty, "training": _Empty,
                                                         "sampling": _Empty}, _nan_recipe))


def test_nonfinite_loss_stops_cleanly_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    case_file = tmp_path / "nan.yaml"
    case_file.write_text("name: nan\nrecipe: test_nan\ndata: {blow_up_at: 7}\ntraining: {steps: 30}\n"
                         "run: {checkpoint_every: 5}\n")
    result = run_case(load_case(case_file), out_root=tmp_path / "runs")
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["first_nonfinite_step"] == 7 and "loss became" in header["status"]
    assert result.report.partial and "step 7" in result.report.partial
    assert load_checkpoint(result.run_dir / CHECKPOINT)["step"] == 5
    assert losses(result.run_dir).index.max() == 7


def test_nonfinite_loss_can_continue(tmp_path: Path) -> None:
    case_file = tmp_path / "nan.yaml"
    case_file.write_text("name: nan\nrecipe: test_nan\ndata: {blow_up_at: 3}\ntraining: {steps: 9}\n"
                         "run: {on_nonfinite: continue, checkpoint_every: 2}\n")
    result = run_case(load_case(case_file), out_root=tmp_path / "runs")
    assert result.report.partial is None and losses(result.run_dir).index.max() == 9
    assert load_checkpoint(result.run_dir / CHECKPOINT)["step"] == 2


def test_checkpoint_with_foreign_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 3, "weights": torch.ones(2)})
    assert load_checkpoint(path)["step"] == 3
    torch.save({"step": 3, "payload": Path("x")}, path)
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(path)


def test_resume_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gendiag.cli import main

    assert main(["run"]) == 1
    assert "exactly one" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 1
    assert "not a run folder" in capsys.readouterr().err

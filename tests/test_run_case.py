"""A case end to end: every artefact of the run folder, TensorBoard files that read back, re-rendered reports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gendiag.cli import main
from gendiag.config import load_case
from gendiag.runner import run_case

CASE = Path(__file__).resolve().parent.parent / "cases" / "pointcloud_moons.yaml"
TINY = ["training.steps=60", "sampling.n_samples=200", "sampling.steps=20", "data.heldout=200",
        "model.hidden=32", "model.depth=2", "training.observe_every=20"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs")
    return run_case(load_case(CASE, overrides=TINY), out_root=root)


@pytest.mark.slow
def test_run_folder_holds_every_artefact(finished_run) -> None:
    run_dir = finished_run.run_dir
    assert run_dir.parent.name == "pointcloud_moons"
    for name in ("config.yaml", "run.json", "metrics.csv", "findings.json", "report.md", "report.html"):
        assert (run_dir / name).stat().st_size > 0, name
    header = json.loads((run_dir / "run.json").read_text())
    assert header["status"] == "finished" and header["results"]["w2"] > 0
    assert header["results"]["w2_ratio"] == pytest.approx(header["results"]["w2"] / header["results"]["w2_floor"])
    metrics = pd.read_csv(run_dir / "metrics.csv")
    losses = metrics[metrics["tag"] == "loss/train"]
    assert list(losses["step"]) == list(range(1, 61))
    assert (run_dir / "figures" / "samples_vs_data.png").stat().st_size > 0
    assert "Samples against data" in (run_dir / "report.md").read_text()


def test_tensorboard_event_files_read_back(finished_run) -> None:
    events = EventAccumulator(str(finished_run.run_dir / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    assert "loss/train" in events.Tags()["scalars"]
    logged = pd.read_csv(finished_run.run_dir / "metrics.csv")
    expected = logged[logged["tag"] == "loss/train"]["value"].to_numpy()
    read = [event.value for event in events.Scalars("loss/train")]
    assert read == pytest.approx(list(expected), rel=1e-6)


def test_report_command_rerenders_without_training(finished_run, capsys: pytest.CaptureFixture[str]) -> None:
    html = finished_run.run_dir / "report.html"
    html.unlink()
    assert main(["report", str(finished_run.run_dir)]) == 0
    assert html.is_file() and "<img" in html.read_text()


def test_report_on_broken_run_folder_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 1
    assert "missing findings.json" in capsys.readouterr().err
    (tmp_path / "findings.json").write_text("{not json")
    (tmp_path / "sections.json").write_text("[]")
    assert main(["report", str(tmp_path)]) == 1
    assert "corrupt JSON" in capsys.readouterr().err


def test_two_runs_get_two_folders(tmp_path: Path) -> None:
    from gendiag.rundir import create_run_dir

    first, second = create_run_dir(tmp_path, "case"), create_run_dir(tmp_path, "case")
    assert first != second and first.is_dir() and second.is_dir()
    with pytest.raises(ValueError, match="plain folder name"):
        create_run_dir(tmp_path, "../escape")

"""A Monitor never writes into a folder that holds an earlier run unless told to: it refuses with one line,
`overwrite=True` clears the old run's artefacts first (and only those), `resume=True` continues the run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gendiag


def _user_loop(run_dir: Path, steps: int = 30, **options: object) -> None:
    """A user's small regression-style loop: their own batches, their own step counter starting at 1."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with gendiag.Monitor(run_dir, probes=["loss"], **options) as mon:
        for it in range(1, steps + 1):
            batch = torch.randn(32, 4)
            loss = (model(batch) - batch.flip(1)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            mon.step(it, loss)


def _events(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "tb").glob("events.out.tfevents.*"))


def test_a_finished_run_is_refused_with_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "my_flow"
    _user_loop(run_dir)
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}

    with pytest.raises(FileExistsError) as refused:
        gendiag.Monitor(run_dir)
    message = str(refused.value)
    assert "\n" not in message and str(run_dir) in message and "overwrite=True" in message
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before


def test_overwrite_replaces_the_old_run_and_keeps_the_users_own_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _user_loop(run_dir, steps=30)
    (run_dir / "notes.txt").write_text("my notes")
    (run_dir / "figures" / "stale.png").write_bytes(b"old figure")
    _user_loop(run_dir, steps=12, overwrite=True)

    assert len(_events(run_dir)) == 1  # the first run's event file is gone, not mixed with the new one
    assert not (run_dir / "figures" / "stale.png").exists()
    assert (run_dir / "notes.txt").read_text() == "my notes"
    metrics = (run_dir / "metrics.csv").read_text().splitlines()
    assert max(int(line.split(",")[0]) for line in metrics[1:]) == 12


def test_a_folder_without_a_run_is_used_as_it_is(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("lr: 0.01\n")
    _user_loop(run_dir)
    assert (run_dir / "report.md").is_file() and (run_dir / "config.yaml").read_text() == "lr: 0.01\n"


def test_resume_continues_the_run_in_its_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _user_loop(run_dir)
    first_events = _events(run_dir)
    _user_loop(run_dir, resume=True)
    assert set(first_events) < set(_events(run_dir))
    with pytest.raises(ValueError, match="overwrite=True and resume=True"):
        gendiag.Monitor(run_dir, overwrite=True, resume=True)

"""The first hour of a new user with the `gendiag` command: torch's thread count set and recorded, bad input
that stops with one line and leaves no folder behind, progress that reaches a log file, `gendiag list` one line
per case."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

import gendiag
from gendiag.cli import main
from gendiag.config import CaseError, load_case
from gendiag.progress import PlainLines, training_progress
from gendiag.recipes import RECIPES, Recipe, register
from gendiag.runner import run_case
from gendiag.threads import busy_note, default_threads, physical_cores

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"
MOONS = CASES / "pointcloud_moons.yaml"
TINY_FLOW = ["training.steps=20", "sampling.n_samples=200", "sampling.steps=10", "data.heldout=200",
             "model.hidden=16", "model.depth=2", "training.observe_every=10", "probes.set=[]"]
TINY_GAN = ["training.steps=12", "sampling.n_samples=200", "training.sample_every=6", "training.observe_every=6",
            "model.g_hidden=16", "model.d_hidden=16", "model.z_dim=4", "training.batch_size=32", "probes.set=[]"]


def _sets(overrides: list[str]) -> list[str]:
    return sum((["--set", item] for item in overrides), [])


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gendiag: error:"), err
    return lines[0]


# -- threads ------------------------------------------------------------------------------------------------------

def test_threads_are_applied_during_the_run_recorded_and_restored(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's count differs from the case's, so the run must set its own
    seen: list[int] = []
    try:
        case = load_case(MOONS, overrides=[*TINY_FLOW, "run.threads=1"])
        result = run_case(case, out_root=tmp_path, progress=lambda step, info: seen.append(torch.get_num_threads()))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert set(seen) == {1} and len(seen) == 20
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["threads"] == 1 and header["torch"] == torch.__version__
    assert header["device"] == "cpu" and header["seed"] == 0
    assert "threads: 1" in (result.run_dir / "config.yaml").read_text()


def test_cli_threads_option_reaches_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(MOONS), "--out", str(tmp_path), "--threads", "1", *_sets(TINY_FLOW)]) == 0
    run_dir = next((tmp_path / "pointcloud_moons").iterdir())
    assert json.loads((run_dir / "run.json").read_text())["threads"] == 1
    assert "report written in" in capsys.readouterr().out  # the report's own cost is said (issue 23)
    assert main(["run", "--resume", str(run_dir), "--threads", "2"]) == 1
    assert "--threads" in _one_error_line(capsys.readouterr().err)


def test_default_threads_follow_omp_num_threads_else_the_physical_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == physical_cores()
    assert 1 <= physical_cores() <= len(os.sched_getaffinity(0))


def test_a_busy_machine_gets_a_note_about_threads() -> None:
    assert busy_note(2, load=0.0, cores=2) is None
    assert busy_note(2, load=1.9, cores=2) is None  # this run's own process and a little more: not busy
    assert busy_note(1, load=7.5, cores=2) is None
    note = busy_note(2, load=7.5, cores=2)
    assert note is not None and "load average of 7.5" in note and "--threads 1" in note


# -- bad input: one line, non-zero exit, no folder left --------------------------------------------------------------

def test_unknown_distribution_names_file_key_and_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    assert main(["run", str(MOONS), "--out", str(out), "--set", "data.distribution=banana"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert str(MOONS) in line and "data.distribution" in line and "'banana'" in line
    assert "moons" in line and "swissroll" in line  # the list of known distributions
    assert not out.exists()


def test_distribution_parameters_are_checked_at_load_time(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match=r"data\.params: 'radius' is not a parameter of distribution 'moons'"):
        load_case(MOONS, overrides=["data.params.radius=2"])
    with pytest.raises(CaseError, match=r"data\.params: ring: 'n_modes' must be an integer >= 1, got 0"):
        load_case(CASES / "gan_ring.yaml", overrides=["data.params.n_modes=0"])
    with pytest.raises(CaseError, match=r"data\.dataset: the conv VAE needs 28×28 images"):
        load_case(CASES / "vae_mnist.yaml", overrides=["data.dataset=moons"])
    with pytest.raises(CaseError, match=r"training\.batch_size: must be a multiple of model\.pack=3"):
        load_case(CASES / "gan_ring.yaml", overrides=["model.pack=3"])


def _build_fails(case, ctx) -> dict:
    """A recipe whose data cannot be read: it fails after the run folder and its Monitor exist."""
    ctx.start_monitor("generic")
    raise FileNotFoundError(f"{case.path}: data.path: no such file {case.data.path!r}")


class _Data(gendiag.config.Section):
    path: str = "absent.npz"


class _Empty(gendiag.config.Section):
    steps: int = 10


if "test_build_fails" not in RECIPES:
    register(Recipe("test_build_fails", "fails while building", {"data": _Data, "model": _Empty, "training": _Empty,
                                                                  "sampling": _Empty}, _build_fails))


def test_a_recipe_that_fails_while_building_leaves_no_run_folder(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    case_file = tmp_path / "broken.yaml"
    case_file.write_text("name: broken\nrecipe: test_build_fails\n")
    out = tmp_path / "runs"
    out.mkdir()
    assert main(["run", str(case_file), "--out", str(out)]) == 1
    assert "no such file 'absent.npz'" in _one_error_line(capsys.readouterr().err)
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder written by a user's own loop through the public API (a 2-D flow-matching loop)."""
    torch.manual_seed(0)
    run_dir = tmp_path_factory.mktemp("own") / "my_flow"
    field = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return field(torch.cat([x, t[:, None]], dim=1))

    with gendiag.Monitor(run_dir, task="flow") as mon:
        mon.watch(field, name="field", x_arg=0, t_arg=None)
        for step in range(1, 121):
            x1 = torch.randn(64, 2) * 0.3 + torch.tensor([1.5, 0.0]) * torch.randint(0, 2, (64, 1)).mul(2).sub(1)
            x0 = torch.randn_like(x1)
            t = torch.rand(64)
            xt = t[:, None] * x1 + (1 - t[:, None]) * x0
            per_sample = ((velocity(xt, t) - (x1 - x0)) ** 2).sum(1)
            loss = per_sample.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(step, loss, t=t, per_sample_loss=per_sample.detach())
            if step % 40 == 1:
                mon.observe_data(x1, role="data")
                mon.observe_data(x0, role="source")
        with mon.sampling(), torch.no_grad():
            x = torch.randn(400, 2)
            for k in range(20):
                x = x + velocity(x, torch.full((400,), k / 20)) / 20
        mon.observe_samples(x)
    return run_dir


def _broken_copy(own_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(own_run, copy)
    return copy


@pytest.mark.slow
def test_report_renders_a_users_own_run(own_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = _broken_copy(own_run, tmp_path)
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("damage, expected", [
    (lambda run: (run / "metrics.csv").unlink(), "missing metrics.csv"),
    (lambda run: (run / "metrics.csv").write_text('step,tag\n1,"unclosed\n2,x,3,4\n'), "metrics.csv"),
    (lambda run: (run / "metrics.csv").write_bytes(b"\xff\xfe\x00garbage"), "not a readable metrics table"),
    (lambda run: shutil.rmtree(run / "figures"), "figure"),
])
def test_report_on_a_damaged_run_fails_with_one_line(own_run: Path, tmp_path: Path, damage, expected: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    copy = _broken_copy(own_run, tmp_path)
    assert json.loads((copy / "sections.json").read_text()), "the run should have sections with figures"
    html = (copy / "report.html").read_bytes()
    damage(copy)
    assert main(["report", str(copy)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert expected in line and str(copy) in line
    assert (copy / "report.html").read_bytes() == html  # nothing re-rendered half-empty


def test_resume_of_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not a run")
    assert main(["run", "--resume", str(tmp_path)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "not a run folder" in line and "config.yaml" in line and "run.json" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert main(["run", "--resume", str(tmp_path / "absent")]) == 1
    assert "no such run folder" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "absent").exists()


# -- progress -----------------------------------------------------------------------------------------------------

def test_progress_off_a_terminal_is_plain_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(MOONS), "--out", str(tmp_path), *_sets(TINY_FLOW)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("pointcloud_moons  step")]
    assert lines[0].startswith("pointcloud_moons  step 1/20  loss ")
    assert re.match(r"pointcloud_moons  step 20/20  [\d.]+ steps/s  ETA 0:00:00  loss [-\d.e]+$", lines[-1])
    assert "\x1b" not in "".join(lines)  # no terminal control codes in a log file


def test_gan_progress_shows_both_losses_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(CASES / "gan_ring.yaml"), "--out", str(tmp_path), *_sets(TINY_GAN)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gan_ring  step")]
    assert len(lines) >= 2
    for line in lines:
        assert re.search(r"loss_d [-\d.e]+  loss_g [-\d.e]+$", line) and not re.search(r"\bloss [-\d]", line)


def test_plain_lines_every_interval_plus_first_and_last() -> None:
    out = io.StringIO()
    times = iter([0.0, 1.0, 5.0, 11.0, 12.0, 25.0, 26.0])
    lines = PlainLines(Console(file=out, width=200), "case", total=7, every_s=10.0, clock=lambda: next(times))
    for step in range(1, 8):
        lines.update(step, {"loss": 0.5})
    lines.close()
    steps = [int(re.search(r"step (\d+)/7", line).group(1)) for line in out.getvalue().splitlines()]
    assert steps == [1, 4, 6, 7]
    assert "case  step 4/7  0.273 steps/s  ETA 0:00:11  loss 0.5" in out.getvalue()  # 3 steps in 11 s, 3 to go


def test_plain_lines_of_a_run_that_stops_early_end_with_the_last_step_reached() -> None:
    out = io.StringIO()
    times = iter(range(5))
    lines = PlainLines(Console(file=out, width=200), "case", total=100, every_s=10.0, clock=lambda: next(times))
    for step in range(1, 5):
        lines.update(step, {"loss": 1.0})
    lines.close()
    assert [line.split("  ")[1] for line in out.getvalue().splitlines()] == ["step 1/100", "step 4/100"]


@pytest.mark.parametrize("total", [4, 22000, 1_000_000])
def test_bar_at_80_columns_keeps_the_total(total: int) -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    with training_progress(console, "gan_grid_fixed_long_name", total) as update:
        update(total // 2, {"loss_d": 1.386294, "loss_g": 0.693147})
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # the live display's cursor moves
    shown = [line for line in re.split(r"[\r\n]", plain) if line.strip()][-1]
    assert f"{total // 2}/{total}" in shown and "loss_d 1.386" in shown and len(shown) <= 80


# -- gendiag list -------------------------------------------------------------------------------------------------

def test_list_is_one_line_per_case(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(path.name for path in CASES.glob("*.yaml"))
    assert main(["list", "--dir", str(CASES)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == files
    grid = next(line for line in lines if line.startswith("gan_grid_fixed.yaml"))
    assert "88.9" not in grid
    assert main(["list", "--dir", str(CASES), "-v"]) == 0
    assert "the lab notes are in this file's comments" in " ".join(capsys.readouterr().out.split())


def test_gan_grid_fixed_keeps_its_lab_notes_in_comments() -> None:
    text = (CASES / "gan_grid_fixed.yaml").read_text()
    description = load_case(CASES / "gan_grid_fixed.yaml").file.description
    assert "88.9/83.9/88.4%" not in description and "# - Seeds 0/1/2 (one thread): 25/25/25 modes, 88.9/83.9/88.4%" in text

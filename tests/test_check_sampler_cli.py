"""`gendiag check-sampler`: a correct Euler sampler passes (exit 0), a frozen one and one integrating from 1 to 0
fail naming their fault (exit 1), a diffusion sampler on another time scale passes once --time-scale says so, and
bad input (no such file or name, wrong arity, a sampler that raises or returns the wrong shape) is one line with
exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gendiag.cli import main
from gendiag.testing import SamplerContractError

ROOT = Path(__file__).resolve().parent.parent



@pytest.fixture()
def samplers() -> Path:
    return ROOT / "tests" / "user_samplers.py"


def check(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, list[str]]:
    status = main(["check-sampler", *args, "--examples", "2"])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return status, out.out.strip().splitlines()


def test_a_correct_euler_sampler_passes(samplers: Path, capsys: pytest.CaptureFixture) -> None:
    status, lines = check(capsys, f"{samplers}:euler")
    assert status == 0
    assert all(line.startswith("PASS") for line in lines[:-1]) and len(lines) == 7
    assert "6 of 6 properties hold" in lines[-1]


def test_a_frozen_sampler_fails_naming_sampler_state_frozen(samplers: Path, capsys: pytest.CaptureFixture) -> None:
    status, lines = check(capsys, f"{samplers}:frozen")
    assert status == 1
    frozen = [line for line in lines if line.startswith("FAIL  state moves at every call")]
    assert frozen and "sampler-state-frozen" in frozen[0] and "8 steps" in frozen[0]


def test_a_sampler_from_one_to_zero_fails(samplers: Path, capsys: pytest.CaptureFixture) -> None:
    status, lines = check(capsys, f"{samplers}:backwards")
    assert status == 1
    assert any(line.startswith("FAIL  time runs from 0 to 1") and "integrates from data to source" in line
               for line in lines)


def test_a_module_path_names_the_sampler_too(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    status, lines = check(capsys, "reference_models.solvers:heun", "--order", "2")
    assert status == 0, lines


@pytest.mark.slow
def test_a_diffusion_sampler_passing_t_over_T_feeds_t_on_another_scale(samplers: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    status, lines = check(capsys, f"{samplers}:ddim_over_T", "--kind", "ddim")
    assert status == 1 and any("t on another scale" in line for line in lines)


def test_time_scale_declares_a_sampler_passing_t_over_T(samplers: Path, capsys: pytest.CaptureFixture) -> None:
    status, lines = check(capsys, f"{samplers}:ddim_over_T", "--kind", "ddim", "--time-scale", "1")
    assert status == 0, lines


@pytest.mark.parametrize(("name", "words"), [
    ("two_arguments", "takes (velocity_fn, x0), expected sampler(velocity_fn, x0, steps) -> x1"),
    ("raises", "raised RuntimeError: the model is not loaded (called as sampler(velocity_fn, x0 (64, 2), steps=8))"),
    ("first_row", "returned shape (1, 2); expected a tensor of the start's shape (64, 2)"),
    ("missing", "has no attribute 'missing'"),
])
def test_bad_samplers_are_one_line_with_status_two(samplers: Path, capsys: pytest.CaptureFixture, name: str,
                                                   words: str) -> None:
    status, lines = check(capsys, f"{samplers}:{name}")
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith(f"gendiag check-sampler: {samplers}:{name}: ") and words in lines[0]


@pytest.mark.parametrize(("spec", "words"), [("no_such_file.py:euler", "no such file no_such_file.py"),
                                              ("no_such_package.module:euler", "ModuleNotFoundError"),
                                              ("euler", "expected FILE.py:NAME or package.module:NAME")])
def test_paths_that_do_not_exist_are_one_line_with_status_two(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, spec: str,
                                                              words: str) -> None:
    monkeypatch.chdir(tmp_path)
    status, lines = check(capsys, spec)
    assert status == 2 and len(lines) == 1 and words in lines[0]


def test_debug_shows_the_traceback_of_bad_input(samplers: Path) -> None:
    with pytest.raises(SamplerContractError, match="raised RuntimeError: the model is not loaded"):
        main(["--debug", "check-sampler", f"{samplers}:raises"])


@pytest.mark.parametrize("value", ["0", "-1", "inf", "steps"])
def test_a_time_scale_that_is_not_a_positive_number_is_refused(value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["check-sampler", "reference_models.solvers:euler", "--kind", "ddpm", "--time-scale", value])
    assert stop.value.code == 2 and "expected a number > 0" in capsys.readouterr().err


@pytest.mark.slow
def test_the_installed_command_exits_two_without_a_traceback(samplers: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gendiag.cli", "check-sampler", f"{samplers}:raises"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr and "the model is not loaded" in done.stdout

"""Case files: bad input stops with one line naming the file, the key path and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gendiag.cli import main
from gendiag.config import CaseError, load_case

CASES = Path(__file__).resolve().parent.parent / "cases"
GOOD = (CASES / "pointcloud_moons.yaml").read_text()


def _replaced(old: str, new: str) -> str:
    """GOOD with `old` replaced; fails loudly if `old` is not in the case file (a no-op edit would test nothing)."""
    assert old in GOOD, f"tests/test_config.py: {old!r} is no longer in pointcloud_moons.yaml"
    return GOOD.replace(old, new)


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_case_loads_with_typed_sections() -> None:
    case = load_case(CASES / "pointcloud_moons.yaml")
    assert case.name == "pointcloud_moons"
    assert case.training.steps == 3000 and case.data.distribution == "moons"


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(tmp_path, _replaced("  batch_size:", "  batch_sise:"))
    with pytest.raises(CaseError) as error:
        load_case(path)
    message = str(error.value)
    assert str(path) in message and "training.batch_sise" in message and "did you mean 'batch_size'" in message
    assert "\n" not in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "trainig: {}\n")
    with pytest.raises(CaseError, match=r"trainig: unknown key \(did you mean 'training'\?\)"):
        load_case(path)


def test_wrong_type_names_key_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, _replaced("  steps: 3000", "  steps: many"))
    with pytest.raises(CaseError, match=r"training\.steps: input should be a valid integer.*'many'"):
        load_case(path)


def test_out_of_range_value(tmp_path: Path) -> None:
    path = write(tmp_path, _replaced("  lr: 0.001", "  lr: -1"))
    with pytest.raises(CaseError, match=r"training\.lr: input should be greater than 0"):
        load_case(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="no such case file"):
        load_case(tmp_path / "absent.yaml")


def test_malformed_yaml_gives_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ndata: [unclosed\n")
    with pytest.raises(CaseError, match=r"malformed YAML at line \d+"):
        load_case(path)


def test_unknown_recipe(tmp_path: Path) -> None:
    path = write(tmp_path, _replaced("recipe: flow_matching", "recipe: flow_matchin"))
    with pytest.raises(CaseError, match=r"unknown recipe 'flow_matchin' \(did you mean 'flow_matching'\?\)"):
        load_case(path)


def test_overrides_and_their_errors(tmp_path: Path) -> None:
    case = load_case(CASES / "pointcloud_moons.yaml", overrides=["training.steps=7", "data.params.noise=0.1"])
    assert case.training.steps == 7 and case.data.params == {"noise": 0.1}
    with pytest.raises(CaseError, match="not of the form key.path=value"):
        load_case(CASES / "pointcloud_moons.yaml", overrides=["training.steps"])
    with pytest.raises(CaseError, match=r"training\.stepz: unknown key"):
        load_case(CASES / "pointcloud_moons.yaml", overrides=["training.stepz=3"])


def test_profiles_apply_and_unknown_profile_fails(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "profiles:\n  tiny: {training.steps: 5, sampling.n_samples: 100}\n")
    assert load_case(path, profile="tiny").training.steps == 5
    with pytest.raises(CaseError, match=r"no profile 'huge' \(known: default, tiny\)"):
        load_case(path, profile="huge")


def test_cli_bad_case_exits_non_zero_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, _replaced("  hidden: 256", "  hiden: 256"))
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("gendiag: error:") and "model.hiden" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_cli_subprocess_exit_code_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [\n")
    done = subprocess.run([sys.executable, "-m", "gendiag", "run", str(path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "malformed YAML" in done.stderr
    debug = subprocess.run([sys.executable, "-m", "gendiag", "run", str(path), "--debug"], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_cli_version_list_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and "gendiag 0.1.0" in capsys.readouterr().out
    assert main(["list", "--dir", str(CASES)]) == 0
    assert "pointcloud_moons.yaml" in capsys.readouterr().out
    for command in ("run", "list", "report"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0

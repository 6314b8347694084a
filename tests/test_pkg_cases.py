"""Case files at the package level: a case whose settings do not go together stops before any run folder exists
(one line, exit 1), and the shipped cases are found from any working directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gendiag.cli import SHIPPED_CASES, main

CASES = Path(__file__).resolve().parent.parent / "cases"

REFUSED = [
    ("gan_ring.yaml", ["model.pack=3"], r"training\.batch_size: must be a multiple of model\.pack=3"),
    ("gan_ring.yaml", ["model.conditional=true"], r"model\.conditional: needs labelled images"),
    ("vae_mnist.yaml", ["data.dataset=moons"], r"data\.dataset: the conv VAE needs 28×28 images"),
    ("ddpm_swissroll.yaml", ["training.beta_start=0.5", "training.beta_end=0.1"],
     r"training\.beta_start \(0\.5\) must not exceed training\.beta_end \(0\.1\)"),
    ("pixelcnn_digits.yaml", ["model.kernel=4"], r"model\.kernel must be odd, got 4"),
]


@pytest.mark.parametrize(("case", "overrides", "message"), REFUSED, ids=[r[2][:30] for r in REFUSED])
def test_cross_field_checks_stop_before_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     case: str, overrides: list[str], message: str) -> None:
    out = tmp_path / "runs"
    sets = [arg for item in overrides for arg in ("--set", item)]
    assert main(["run", str(CASES / case), *sets, "--out", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gendiag: error:")
    assert re.search(message, lines[0])
    assert not out.exists()


def test_the_repository_cases_folder_is_the_shipped_one() -> None:
    assert CASES.resolve() == SHIPPED_CASES
    assert {p.name for p in CASES.glob("*.yaml")} == {p.name for p in SHIPPED_CASES.glob("*.yaml")} != set()


def test_list_finds_the_shipped_cases_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    shown = capsys.readouterr().out
    assert "flattened_moons.yaml" in shown and "pointcloud_moons.yaml" in shown


def test_run_takes_a_shipped_case_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "gmm_moons", "--set", "training.steps=3", "--set", "sampling.n_samples=100",
                 "--set", "data.heldout=100", "--set", "data.train_points=200", "--out", "runs"]) == 0
    assert "run folder: runs" in capsys.readouterr().out.replace(os.sep, "/")
    assert len(list((tmp_path / "runs" / "gmm_moons").iterdir())) == 1

"""Each reference case runs end to end (the swiss-roll pair in the schedule test) through load_case + run_case with tiny settings and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gendiag.config import load_case
from gendiag.runner import run_case

CASES = Path(__file__).resolve().parent.parent / "cases"
POINTS = ["training.steps=20", "sampling.n_samples=200", "data.heldout=200"]
TINY = {
    "pointcloud_circles": POINTS + ["model.hidden=32", "model.depth=2"],
    "pointcloud_checkerboard": POINTS + ["model.hidden=32", "model.depth=2"],
    "pointcloud_stretched_gaussian": POINTS + ["model.hidden=32", "model.depth=2"],
    "gmm_moons": ["training.steps=10", "sampling.n_samples=200", "data.heldout=200", "data.train_points=500"],
    "ddpm_digits": ["training.steps=10", "training.batch_size=16", "model.widths=[8,16]",
                    "training.diffusion_steps=100", "sampling.ddim_steps=5", "sampling.n_samples=100"],
    "pixelcnn_digits": ["training.steps=10", "training.batch_size=16", "model.hidden=8", "model.layers=1",
                        "sampling.n_samples=50"],
}
EXPECTED = {
    "pointcloud_circles": {"w2", "w2_floor", "w2_ratio"},
    "pointcloud_checkerboard": {"w2", "w2_floor", "w2_ratio"},
    "pointcloud_stretched_gaussian": {"w2", "w2_floor", "w2_ratio"},
    "gmm_moons": {"w2", "w2_floor", "w2_ratio", "train_nll", "heldout_nll"},
    "ddpm_digits": {"classes_found", "largest_class_share", "frechet", "frechet_floor"},
    "pixelcnn_digits": {"test_bits_per_dim", "baseline_bits_per_dim", "classes_found", "frechet"},
}


def codes(run_dir: Path) -> set[str]:
    return {finding["code"] for finding in json.loads((run_dir / "findings.json").read_text())["findings"]}


FLOW_COPIES = {"pointcloud_circles", "pointcloud_checkerboard", "pointcloud_stretched_gaussian"}
SLOW = FLOW_COPIES | {"ddpm_digits"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
                                  for name in sorted(TINY)])
def test_case_runs_end_to_end(name: str, tmp_path: Path) -> None:
    case = load_case(CASES / f"{name}.yaml", overrides=TINY[name])
    result = run_case(case, out_root=tmp_path)
    assert (result.run_dir / "report.html").is_file() and (result.run_dir / "figures").is_dir()
    assert EXPECTED[name] <= set(result.results)
    header = json.loads((result.run_dir / "run.json").read_text())
    assert header["status"] == "finished"
    assert "probe-failed" not in codes(result.run_dir)


@pytest.mark.slow
def test_tutorial_schedule_is_flagged_and_the_fix_is_not(tmp_path: Path) -> None:
    settings = POINTS + ["model.hidden=32", "model.depth=2"]
    short = run_case(load_case(CASES / "ddpm_swissroll.yaml", overrides=settings), out_root=tmp_path)
    fixed = run_case(load_case(CASES / "ddpm_swissroll_fixed.yaml", overrides=settings), out_root=tmp_path)
    assert short.results["alphas_cumprod_T"] == pytest.approx(0.3636, abs=1e-3)
    assert fixed.results["alphas_cumprod_T"] < 1e-4
    assert "schedule-not-reaching-noise" in codes(short.run_dir)
    assert "schedule-not-reaching-noise" not in codes(fixed.run_dir)
    assert "probe-failed" not in codes(short.run_dir) | codes(fixed.run_dir)

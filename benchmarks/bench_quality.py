"""Quality bars of the reference models (issue 6), measured by training them through their cases.

- 2D flow matching and DDPM on moons, circles, checkerboard, swiss roll: W2 between 2,000 samples and 2,000 held-out
  points against the two-sample floor; bar W2 <= 2x floor.
- DDPM on 8x8 digits: the project's digit classifier finds all 10 classes among 1,000 samples, none above 20%;
  the Fréchet distance in its features is reported beside the train-vs-test distance.
- PixelCNN on binarized digits: held-out bits per pixel below a per-pixel Bernoulli baseline.

Cases run with the probes switched off (`probes.set=[]`): this measures the models, not gendiag's overhead.
Three seeds of eight point-cloud runs take about 40 minutes on this 2-core machine, so this module is left out of
the default `python -m benchmarks` (bench_cases measures every case's seed-0 quality there); run it with
`--full` or `OMP_NUM_THREADS=1 python -m benchmarks --only bench_quality [--quick]`."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import median_row
from gendiag.config import load_case
from gendiag.runner import run_case

FULL_ONLY = True
CASES = Path(__file__).resolve().parent.parent / "cases"
DATASETS = {
    "moons": "{distribution: moons, params: {noise: 0.05}}",
    "circles": "{distribution: circles, params: {noise: 0.05, factor: 0.5}}",
    "checkerboard": "{distribution: checkerboard, params: {grid_size: 3, scale: 5.0}}",
    "swissroll": "{distribution: swissroll, params: {noise: 0.5, scale: 0.1}}",
}
MODELS = {"flow matching": "pointcloud_moons.yaml", "DDPM": "ddpm_swissroll_fixed.yaml"}


def _run(case_file: str, overrides: list[str], seed: int, out: Path) -> dict[str, Any]:
    case = load_case(CASES / case_file, overrides=["probes.set=[]", "run.checkpoint_every=0", *overrides], seed=seed)
    return run_case(case, out_root=out).results


def point_rows(quick: bool, out: Path) -> list[dict[str, Any]]:
    """W2 / floor for each model and 2D data set, median over seeds (min-max spread)."""
    seeds = [0] if quick else [0, 1, 2]
    rows = []
    for model, case_file in MODELS.items():
        for name, data in DATASETS.items():
            shrink = ["training.steps=500"] if quick else []
            results = [_run(case_file, [f"data={data}", *shrink], seed, out) for seed in seeds]
            ratios = [r["w2_ratio"] for r in results]
            w2s, floors = [r["w2"] for r in results], [r["w2_floor"] for r in results]
            rows.append(median_row(
                f"quality/{model}", f"W2 / floor, {name}", ratios, "ratio", "<= 2", statistics.median(ratios) <= 2,
                f"W2 {statistics.median(w2s):.4f} vs floor {statistics.median(floors):.4f} (2,000 vs 2,000 points); "
                f"{len(seeds)} seed(s), spread min-max; case {case_file}" + (", quick: 500 steps" if quick else "")))
    return rows


def image_rows(quick: bool, out: Path) -> list[dict[str, Any]]:
    """DDPM on digits (classifier class coverage, Fréchet distance) and PixelCNN (bits per pixel vs baseline)."""
    ddpm_shrink = ["training.steps=300", "sampling.ddim_steps=20"] if quick else []
    ddpm = _run("ddpm_digits.yaml", ddpm_shrink, 0, out)
    pixel = _run("pixelcnn_digits.yaml", ["training.steps=300"] if quick else [], 0, out)
    suffix = " (quick: shortened training)" if quick else ""
    rows = []
    for model, results in (("DDPM digits", ddpm), ("PixelCNN digits", pixel)):
        covered = results["classes_found"] == 10 and results["largest_class_share"] <= 0.2
        rows.append(median_row(f"quality/{model}", "classes found among 1,000 samples", [results["classes_found"]],
                               "classes", "10 of 10, none above 20%", covered,
                               f"largest class share {results['largest_class_share']:.3f}; seed 0" + suffix))
        rows.append(median_row(f"quality/{model}", "Fréchet distance to test (classifier features)",
                               [results["frechet"]], "FD", "reported beside train vs test", None,
                               f"train vs test FD {results['frechet_floor']:.3f}; seed 0" + suffix))
    below = pixel["test_bits_per_dim"] < pixel["baseline_bits_per_dim"]
    rows.append(median_row("quality/PixelCNN digits", "held-out bits per pixel", [pixel["test_bits_per_dim"]],
                           "bits/dim", "below the per-pixel Bernoulli baseline", below,
                           f"baseline {pixel['baseline_bits_per_dim']:.4f} bits/dim; seed 0" + suffix))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        return point_rows(quick, out) + image_rows(quick, out)

"""Quality bar of gan_grid_fixed over seeds (issue 7), each run through `gendiag.runner.run_case` as `gendiag run`
does: modes captured of 25, high-quality share and reverse KL of the mode histogram (PacGAN's metrics on 2,500
samples) for seeds 0, 1, 2; the goal is on the mean over seeds (25 modes, ≥ 90 %, ≤ 0.1), shown beside PacGAN's
own table (PacGAN4 on the 2D grid: 24.8 modes, 93.6 % high quality, reverse KL 0.04), with each seed's findings.

The image bars of issue 7 (DCGAN, CGAN, VAE: 10 classes among 1,000 samples, none above 20 %, the Fréchet distance
beside the train-versus-held-out floor) are bench_cases' quality rows for those cases.

Three seeds of the grid take about 10 minutes here, so this module is left out of the default `python -m benchmarks`
(bench_cases runs the case's seed 0 there); run it with `--full` or `--only bench_gan_vae`. Run it with
`OMP_NUM_THREADS=1` to compare with bench_cases' one-thread runs: a GAN's trajectory depends on the thread count.

`quick` shrinks every case to a few steps: a smoke test of this module, with every bar's `met` left as None."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import median_row
from gendiag.config import load_case
from gendiag.runner import run_case

FULL_ONLY = True
CASES = Path(__file__).resolve().parent.parent / "cases"
PACGAN4_GRID = {"modes_captured": 24.8, "high_quality_share": 0.936, "reverse_kl": 0.04}
GRID_SEEDS = (0, 1, 2)
_row = partial(median_row, "gan_vae_quality")
QUICK = ["training.steps=20", "training.sample_every=10"]


def _results(name: str, seed: int, quick: bool, out: Path) -> dict[str, Any]:
    overrides = QUICK if quick else []
    case = load_case(CASES / f"{name}.yaml", overrides=overrides, seed=seed)
    result = run_case(case, out_root=out)
    findings = [f.code for f in result.report.findings if f.severity in ("critical", "warning")]
    return {**result.results, "findings": findings}


def grid_rows(quick: bool, out: Path) -> list[dict[str, Any]]:
    seeds = GRID_SEEDS[:1] if quick else GRID_SEEDS
    runs = [_results("gan_grid_fixed", seed, quick, out) for seed in seeds]
    rows = []
    bars = (("modes_captured", "modes captured of 25", "modes", "mean = 25", lambda mean: mean >= 25),
            ("high_quality_share", "high-quality share", "share", "mean ≥ 0.90", lambda mean: mean >= 0.9),
            ("reverse_kl", "reverse KL of the mode histogram", "nats", "mean ≤ 0.1", lambda mean: mean <= 0.1))
    for key, label, unit, goal, check in bars:
        values = [float(run[key]) for run in runs]
        mean = statistics.fmean(values)
        rows.append(_row(
            f"gan_grid_fixed: {label}", values, unit, goal, None if quick else check(mean),
            f"seeds {list(seeds)}: {[round(v, 3) for v in values]}, mean {mean:.3f}; PacGAN4 (PacGAN's table): "
            f"{PACGAN4_GRID[key]}; spread = max − min; findings per seed: {[run['findings'] for run in runs]}"))
    return rows


def run(quick: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench_gan_vae-") as folder:
        out = Path(folder)
        return grid_rows(quick, out)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))

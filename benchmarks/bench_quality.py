"""Quality bars of the reference models (issue 6), measured by training them through their cases.

- 2D flow matching and DDPM on moons, circles, checkerboard, swiss roll: W2 between 2,000 samples and 2,000 held-out
  points against the two-sample floor; bar W2 <= 2x floor.
- DDPM on 8x8 digits: the project's digit classifier finds all 10 classes among 1,000 samples, none above 20%;
  the Fréchet distance in its features is reported beside the train-vs-test distance.
- PixelCNN on binarized digits: held-out bits per pixel below a per-pixel Bernoulli baseline.
- Flow-matching sampling: batched Euler / Heun against the source material's loop that calls scipy's solve_ivp on
  each point alone, at equal W2 (the fewest steps whose W2 is within 5% of the loop's).

Cases run with the probes switched off (`probes.set=[]`): this measures the models, not gendiag's overhead.
Run: `OMP_NUM_THREADS=1 python -m benchmarks --only bench_quality [--quick]` (writes benchmarks/RESULTS.md)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

from gendiag.config import load_case
from gendiag.data import make_distribution
from gendiag.metrics import wasserstein2
from gendiag.runner import run_case
from reference_models.flow_matching import flow_matching_loss
from reference_models.nets import VelocityMLP
from reference_models.paths import LinearPath
from reference_models.solvers import euler, heun

CASES = Path(__file__).resolve().parent.parent / "cases"
DATASETS = {
    "moons": "{distribution: moons, params: {noise: 0.05}}",
    "circles": "{distribution: circles, params: {noise: 0.05, factor: 0.5}}",
    "checkerboard": "{distribution: checkerboard, params: {grid_size: 3, scale: 5.0}}",
    "swissroll": "{distribution: swissroll, params: {noise: 0.5, scale: 0.1}}",
}
MODELS = {"flow matching": "pointcloud_moons.yaml", "DDPM": "ddpm_swissroll_fixed.yaml"}


def _row(benchmark: str, figure: str, values: list[float], unit: str, goal: str, met: bool | None,
         note: str) -> dict[str, Any]:
    spread = float(max(values) - min(values)) if len(values) > 1 else 0.0
    return {"benchmark": benchmark, "figure": figure, "median": float(statistics.median(values)), "spread": spread,
            "unit": unit, "goal": goal, "met": met, "note": note}


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
            rows.append(_row(
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
        rows.append(_row(f"quality/{model}", "classes found among 1,000 samples", [results["classes_found"]],
                         "classes", "10 of 10, none above 20%", covered,
                         f"largest class share {results['largest_class_share']:.3f}; seed 0" + suffix))
        rows.append(_row(f"quality/{model}", "Fréchet distance to test (classifier features)",
                         [results["frechet"]], "FD", "reported beside train vs test", None,
                         f"train vs test FD {results['frechet_floor']:.3f}; seed 0" + suffix))
    rows.append(_row("quality/PixelCNN digits", "held-out bits per pixel", [pixel["test_bits_per_dim"]], "bits/dim",
                     "below the per-pixel Bernoulli baseline", pixel["test_bits_per_dim"] < pixel["baseline_bits_per_dim"],
                     f"baseline {pixel['baseline_bits_per_dim']:.4f} bits/dim; seed 0" + suffix))
    return rows


def _train_moons_flow(steps: int) -> tuple[VelocityMLP, Any]:
    distribution = make_distribution("moons", noise=0.05)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = VelocityMLP(dim=2, hidden=256, depth=4, time_dim=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    path = LinearPath()
    for _ in range(steps):
        x1 = distribution.sample(256, generator=generator)
        batch = flow_matching_loss(model, torch.randn(256, 2, generator=generator), x1, path, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        batch.loss.backward()
        optimizer.step()
    return model.eval(), distribution


def point_by_point(model: VelocityMLP, x0: torch.Tensor) -> torch.Tensor:
    """The source material's sampler: scipy's solve_ivp (RK45, default tolerances) on each point alone."""
    def rhs(t: float, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            state = torch.from_numpy(x).float().reshape(1, 2)
            return model(state, torch.tensor([t], dtype=torch.float32)).double().reshape(-1).numpy()

    return torch.stack([torch.from_numpy(solve_ivp(rhs, (0.0, 1.0), point.double().numpy()).y[:, -1]).float()
                        for point in x0])


def _cpu_seconds(sample: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    start = time.process_time()
    result = sample()
    return time.process_time() - start, result


def solver_rows(quick: bool) -> list[dict[str, Any]]:
    """Speed-up of batched Euler / Heun over the point-by-point loop, at the fewest steps matching its W2."""
    n, repeats = (300, 1) if quick else (1000, 3)  # issue 8: 1,000 points
    model, distribution = _train_moons_flow(500 if quick else 3000)
    generator = torch.Generator().manual_seed(7)
    x0 = torch.randn(n, 2, generator=generator)
    heldout = distribution.sample(n, generator=generator)
    reference_time, reference = _cpu_seconds(lambda: point_by_point(model, x0))
    reference_w2 = wasserstein2(reference, heldout)
    solvers = {}
    for name, solver, grid in (("euler", euler, [5, 10, 20, 50, 100, 200]), ("heun", heun, [2, 5, 10, 20, 50, 100])):
        steps = next((s for s in grid if wasserstein2(solver(model, x0, s), heldout) <= 1.05 * reference_w2),
                     grid[-1])
        solvers[name] = (solver, steps, wasserstein2(solver(model, x0, steps), heldout), [])
    loop_times = [reference_time]
    for repeat in range(repeats):
        for solver, steps, _, times in solvers.values():
            times.append(_cpu_seconds(lambda: solver(model, x0, steps))[0])
        if repeat + 1 < repeats:
            loop_times.append(_cpu_seconds(lambda: point_by_point(model, x0))[0])
    rows = []
    for name, (_, steps, w2, times) in solvers.items():
        speedups = [loop / batched for loop, batched in zip(loop_times, times)]
        rows.append(_row(
            "quality/flow sampler", f"batched {name} speed-up over point-by-point solve_ivp", speedups, "x",
            "faster at equal W2", statistics.median(speedups) > 1 and w2 <= 1.05 * reference_w2,
            f"{n} points; {name} {steps} steps W2 {w2:.4f} vs loop W2 {reference_w2:.4f}; loop "
            f"{statistics.median(loop_times):.2f} s, batched {statistics.median(times):.3f} s CPU time "
            f"(process_time, one thread); {repeats} interleaved repeat(s), spread min-max"))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        return point_rows(quick, out) + image_rows(quick, out) + solver_rows(quick)

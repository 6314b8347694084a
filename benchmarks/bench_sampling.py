"""Flow-matching sampling (issue 8, item 4): batched Euler and Heun against the source material's sampler, which
calls scipy's solve_ivp (RK45, default tolerances) on each point alone, on 1,000 points at equal W2 (each batched
solver at the fewest steps whose W2 to held-out moons is within 5% of the loop's).

One model (the pointcloud_moons network, 3,000 steps on moons) serves every solver. Times are CPU seconds
(process_time) taken side by side, loop and batched solvers interleaved; the ratio is loop / batched."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

from benchmarks import median_row
from gendiag.data import make_distribution
from gendiag.metrics import wasserstein2
from reference_models.flow_matching import flow_matching_loss
from reference_models.nets import VelocityMLP
from reference_models.paths import LinearPath
from reference_models.solvers import euler, heun

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
    n, repeats = (300, 1) if quick else (1000, 2)  # issue 8: 1,000 points; the loop takes ~25 s a repeat
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
        rows.append(median_row(
            "sampling", f"batched {name} speed-up over point-by-point solve_ivp", speedups, "x",
            "faster at equal W2", statistics.median(speedups) > 1 and w2 <= 1.05 * reference_w2,
            f"{n} points; {name} {steps} steps W2 {w2:.4f} vs loop W2 {reference_w2:.4f}; loop "
            f"{statistics.median(loop_times):.2f} s, batched {statistics.median(times):.3f} s CPU time "
            f"(process_time, all threads; torch threads {torch.get_num_threads()}); {repeats} interleaved "
            f"repeat(s), spread min-max"))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return solver_rows(quick)

"""Detection latency of live diagnosis (issue 20): for a few failing cases, each finding's first step as a share
of the run (first_step / steps), with the Monitor's default live-check schedule (every `CHECK_EVERY` steps and at
least `CHECK_SECONDS` apart). Goal: every critical finding of the flagship and of the failing reference cases known
within the first 20% of the run.

A few cases only, and all but the flagship at reduced size (the overrides are in each row's note): the flagship
`flattened_moons` at its default 200 steps, `ddpm_swissroll`, `gan_d_dominates` and `vae_mnist_collapse` shortened.
A finding no live check saw (one computed from the final samples) counts as known at the last step. One run per
case (the case's seed, one torch thread): the spread column is 0.

The goal rows are the critical *causes*. Outcomes (`gendiag.live.OUTCOMES`: the model's and the samples' stages,
such as `samples-unlike-data`, `mode-collapse`, `posterior-collapse`) are judged on the trained model: a healthy
run's early samples are unlike the data and a healthy GAN covers few modes at first, so live checks record them
but never announce them (no false alarm, no stop), and a recipe draws its samples at the end. Their latency is
reported beside, not held to the goal.

Compute-bound (several minutes on a busy 2-core machine): behind `python -m benchmarks --cases`."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from gendiag.config import load_case
from gendiag.live import CHECK_EVERY, CHECK_SECONDS, OUTCOMES
from gendiag.runner import run_case

CASES_ONLY = True
CASES = Path(__file__).resolve().parent.parent / "cases"
GOAL = 0.20  # share of the run by which every critical cause is known
RUNS = {
    "flattened_moons": [],
    "ddpm_swissroll": ["training.steps=1000", "sampling.n_samples=500", "data.heldout=500"],
    "gan_d_dominates": ["training.steps=300"],
    "vae_mnist_collapse": ["training.epochs=3", "sampling.n_samples=200"],
}
QUICK = {"flattened_moons": ["training.steps=30"], "ddpm_swissroll": ["training.steps=60", "sampling.n_samples=200",
                                                                      "data.heldout=200"],
         "gan_d_dominates": ["training.steps=30"],
         "vae_mnist_collapse": ["training.epochs=1", "data.train_size=256", "sampling.n_samples=100"]}


def latencies(name: str, overrides: list[str], out_root: Path) -> tuple[int, list[dict[str, Any]]]:
    """Run one case; its run length and, per finding, its code, severity and first step."""
    case = load_case(CASES / f"{name}.yaml", overrides=[*overrides, "run.threads=1", "run.checkpoint_every=0"])
    report = run_case(case, out_root=out_root).report
    return report.steps, [{"code": f.code, "severity": f.severity, "first_step": f.first_step}
                          for f in report.findings if f.code not in ("probe-failed", "probe-not-run")]


def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    shares: list[float] = []
    critical: list[float] = []
    outcomes: list[float] = []
    schedule = f"live checks every {CHECK_EVERY} steps, at least {CHECK_SECONDS:g} s apart (the defaults)"
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in (QUICK if quick else RUNS).items():
            steps, found = latencies(name, overrides, Path(tmp))
            settings = ", ".join(overrides) if overrides else "default profile"
            for finding in found:
                share = finding["first_step"] / steps
                shares.append(share)
                is_critical = finding["severity"] == "critical" and finding["code"] not in OUTCOMES
                if is_critical:
                    critical.append(share)
                elif finding["severity"] == "critical":
                    outcomes.append(share)
                rows.append({
                    "benchmark": "detection latency", "figure": f"{name}: {finding['code']} ({finding['severity']})",
                    "median": share, "spread": 0.0, "unit": "share of the run",
                    "goal": f"≤ {GOAL:.0%}" if is_critical else "reported (an outcome, judged on the trained model)"
                    if finding["code"] in OUTCOMES else "reported",
                    "met": (share <= GOAL) if is_critical and not quick else None,
                    "note": f"first seen at step {finding['first_step']} of {steps}; {settings}; {schedule}",
                })
    for label, values, goal in (("every finding", shares, None), ("critical causes", critical, GOAL),
                                ("critical outcomes", outcomes, None)):
        if not values:
            continue
        note = f"{len(values)} findings over {len(RUNS)} cases; {schedule}"
        rows.append({"benchmark": "detection latency", "figure": f"{label}, median", "median": statistics.median(values),
                     "spread": 0.0, "unit": "share of the run", "goal": "reported", "met": None, "note": note})
        rows.append({"benchmark": "detection latency", "figure": f"{label}, worst", "median": max(values),
                     "spread": 0.0, "unit": "share of the run", "goal": f"≤ {goal:.0%}" if goal else "reported",
                     "met": (max(values) <= goal) if goal and not quick else None, "note": note})
    return rows

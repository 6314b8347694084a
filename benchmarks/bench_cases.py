"""Every case's default profile, run as a user runs it (`python -m gendiag run cases/NAME.yaml` in a subprocess):
wall time against the case's budget, the quality figure it reaches, and its findings.

Budgets come from the issues: pointcloud_moons under 2 minutes, the flattened cases under 3, every other case
under 5. The quality figure depends on the recipe (W2 / two-sample floor, modes captured, classes found, bits per
pixel, cosine similarity to the target picture); where the issues set a bar for that case, `met` says whether the
run reaches it, otherwise the figure is reported with no goal. One run per case (seed of the case file): the
spread column is 0, and the note says so.

Cases run `BENCH_WORKERS` at a time (default: one per core), each process with torch limited to cores / workers
threads, longest first (by the last recorded wall times), so the whole set fits the one-command budget; a case's
wall time is therefore measured beside other cases, one thread each on this 2-core machine (the note says so).

`quick` runs each case at a few steps: a smoke test of this module; every row's `met` is then None.

`BENCH_CASES=name,name python -m benchmarks --only bench_cases` reruns only those cases and keeps the other cases'
rows from benchmarks/results/bench_cases.json as they were measured (their notes say when)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

CASES_ONLY = True  # compute-bound (about 20 minutes on 2 cores): behind `python -m benchmarks --cases`
CASES = Path(__file__).resolve().parent.parent / "cases"
PREVIOUS = Path(__file__).resolve().parent / "results" / "bench_cases.json"
BUDGET_SECONDS = {"pointcloud_moons": 120}
FLATTENED_BUDGET, DEFAULT_BUDGET = 180, 300
QUICK_OVERRIDES = {
    "flow_matching": ["training.steps=20"], "flattened_flow": ["training.steps=6"], "ddpm_points": ["training.steps=20"],
    "ddpm_images": ["training.steps=5", "sampling.n_samples=20"], "pixelcnn": ["training.steps=5"],
    "gmm": [], "gan": ["training.steps=10"], "vae": ["training.epochs=1", "data.train_size=256"],
}
TOTAL = "cases/total"
W2_BAR = 2.0  # issue 6: flow matching and DDPM on 2D data within 2x the two-sample floor
HEALTHY_IMAGE_CASES = {"ddpm_digits", "dcgan_mnist", "cgan_mnist", "vae_mnist", "vae_mnist_annealed"}


def _budget(name: str) -> int:
    if name in BUDGET_SECONDS:
        return BUDGET_SECONDS[name]
    return FLATTENED_BUDGET if name.startswith("flattened_") else DEFAULT_BUDGET


def _recipe(case_file: Path) -> str:
    import yaml

    return str(yaml.safe_load(case_file.read_text())["recipe"])


def _quality(name: str, results: dict[str, Any]) -> tuple[str, float, str, bool | None]:
    """(figure, value, goal, met) for the headline quality of one case."""
    if "w2_ratio" in results:
        bar = W2_BAR if name.startswith("pointcloud_") or name == "ddpm_swissroll_fixed" else None
        met = None if bar is None else results["w2_ratio"] <= bar
        return "W2 / two-sample floor", float(results["w2_ratio"]), f"<= {bar}" if bar else "reported", met
    if "modes_captured" in results:
        if name == "gan_grid_fixed":
            met = (results["modes_captured"] == results["n_modes"] and results["high_quality_share"] >= 0.9
                   and results["reverse_kl"] <= 0.1)
            return "modes captured", float(results["modes_captured"]), "25, >= 90% HQ, rev. KL <= 0.1", met
        return "modes captured", float(results["modes_captured"]), f"reported (of {results['n_modes']})", None
    if "test_bits_per_dim" in results:
        return ("held-out bits per pixel", float(results["test_bits_per_dim"]),
                f"< Bernoulli baseline {results['baseline_bits_per_dim']:.4f}",
                results["test_bits_per_dim"] < results["baseline_bits_per_dim"])
    if "classes_found" in results:
        healthy = name in HEALTHY_IMAGE_CASES
        met = (results["classes_found"] == 10 and results["largest_class_share"] <= 0.2) if healthy else None
        return "classes found of 10", float(results["classes_found"]), "10, none > 20%" if healthy else "reported", met
    if "active_units" in results:
        return "active latent units", float(results["active_units"]), "reported", None
    if "cos_target" in results:
        return "cosine(final picture, target)", float(results["cos_target"]), "reported", None
    raise ValueError(f"bench_cases: case {name} returned no known quality figure; results keys: {sorted(results)}")


def _note_details(results: dict[str, Any]) -> str:
    keys = ("w2", "w2_floor", "high_quality_share", "reverse_kl", "largest_class_share", "frechet", "frechet_floor",
            "baseline_bits_per_dim", "cos_source", "final_loss")
    shown = [f"{k} {results[k]:.4g}" for k in keys if isinstance(results.get(k), (int, float))]
    return ", ".join(shown)


def run_one(case_file: Path, quick: bool, out: Path, threads: int | None = None,
            clock: Callable[[], float] = time.perf_counter) -> tuple[float, dict[str, Any], list[dict[str, Any]]]:
    """Run one case through the CLI (torch limited to `threads`, if given); returns (wall seconds, results,
    findings)."""
    overrides = [arg for item in QUICK_OVERRIDES[_recipe(case_file)] for arg in ("--set", item)] if quick else []
    command = [sys.executable, "-m", "gendiag", "run", str(case_file), "--out", str(out), *overrides]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {})}
    start = clock()
    finished = subprocess.run(command, capture_output=True, text=True, cwd=CASES.parent, env=env)
    seconds = clock() - start
    if finished.returncode != 0:
        raise RuntimeError(f"{case_file.name}: gendiag run exited {finished.returncode}: "
                           f"{(finished.stderr or finished.stdout).strip().splitlines()[-1:]}")
    run_dirs = sorted((out / case_file.stem).iterdir())
    run_dir = run_dirs[-1]
    results = json.loads((run_dir / "run.json").read_text())["results"]
    findings = json.loads((run_dir / "findings.json").read_text())["findings"]
    return seconds, results, findings


def _chosen_cases() -> list[Path]:
    every = sorted(CASES.glob("*.yaml"))
    names = [n.strip() for n in os.environ.get("BENCH_CASES", "").split(",") if n.strip()]
    unknown = sorted(set(names) - {f.stem for f in every})
    if unknown:
        raise ValueError(f"BENCH_CASES: unknown cases {unknown}; known: {[f.stem for f in every]}")
    return [f for f in every if f.stem in names] if names else every


def _case_of(row: dict[str, Any]) -> str:
    return row["figure"].split(":")[0]


def _longest_first(cases: list[Path], previous: list[dict[str, Any]]) -> list[Path]:
    """Cases ordered by their wall time in the `previous` rows, longest first (unknown ones first of all)."""
    recorded = {row["figure"]: row["median"] for row in previous if row["benchmark"] == "cases/wall time"}
    return sorted(cases, key=lambda case: -recorded.get(case.stem, float("inf")))


def _workers() -> int:
    value = os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"BENCH_WORKERS: expected a positive whole number of parallel cases, got {value!r}")
    return int(value)


def run(quick: bool = False) -> list[dict[str, Any]]:
    previous = json.loads(PREVIOUS.read_text())["rows"] if PREVIOUS.is_file() else []
    chosen = _longest_first(_chosen_cases(), previous)
    workers = min(_workers(), len(chosen))
    threads = max(1, (os.cpu_count() or 1) // workers)
    stamp = time.strftime("%Y-%m-%dT%H:%M")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_cases-") as folder, ThreadPoolExecutor(workers) as pool:
        outcomes = pool.map(lambda case: run_one(case, quick, Path(folder), threads), chosen)
        for case_file, (seconds, results, findings) in zip(chosen, outcomes):
            name = case_file.stem
            budget = _budget(name)
            serious = sorted({f["code"] for f in findings if f["severity"] in ("critical", "warning")})
            rows.append({"benchmark": "cases/wall time", "figure": name, "median": seconds, "spread": 0.0,
                         "unit": "s", "goal": f"<= {budget}", "met": None if quick else seconds <= budget,
                         "note": f"one run of the default profile through the CLI, imports included, {workers} "
                                 f"case(s) at a time with {threads} torch thread(s) each"
                                 + (" (quick: a few steps)" if quick else "") + f" [measured {stamp}]"})
            figure, value, goal, met = _quality(name, results)
            rows.append({"benchmark": "cases/quality", "figure": f"{name}: {figure}", "median": value, "spread": 0.0,
                         "unit": "", "goal": goal, "met": None if quick else met,
                         "note": f"{_note_details(results)}; critical/warning findings: {serious or 'none'} "
                                 f"[measured {stamp}]"})
    rerun = {f.stem for f in chosen}
    if not quick and len(chosen) < len(list(CASES.glob("*.yaml"))):
        rows += [row for row in previous if row["benchmark"] != TOTAL and _case_of(row) not in rerun]
    rows = sorted(rows, key=lambda row: (_case_of(row), row["benchmark"] != "cases/wall time"))
    return rows + [_total_row(rows, workers)]


def _total_row(rows: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """The cases' wall times added up: divided by the parallel runs, the least time any schedule of them takes."""
    walls = [row["median"] for row in rows if row["benchmark"] == "cases/wall time"]
    total = float(sum(walls))
    return {"benchmark": TOTAL, "figure": f"{len(walls)} cases' wall times added up", "median": total, "spread": 0.0,
            "unit": "s", "goal": "reported", "met": None,
            "note": f"run {workers} at a time, no order of them finishes in under {total / workers / 60:.1f} minutes "
                    f"(the total / {workers}), however the cases are scheduled"}

"""The cost of `gendiag attach` (issue 19): whole-process time of the healthy 2-D flow script
(`cases/scripts/healthy_flow.py`, its default 1,500 steps) run bare and run as `gendiag attach -- python ...`, in
fresh processes taking turns (bare, attached, bare, ...), one torch thread each. The attached process includes
what a user pays: importing gendiag, the hooks, the probes' per-step work, and the report at the end
(`Monitor.finish`, whose own seconds the report states); the second row takes that report time out, leaving the
hooks' and the probes' cost during training. Goal (the issue's): the whole process within 1.15x of the bare one.
A reported row runs the script once more at `LONG_STEPS`, as long as 2-D tutorials train, where the imports and the
report weigh less."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import median_row

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cases" / "scripts" / "healthy_flow.py"
GOAL = 1.15


LONG_STEPS = 10_000  # a reported row: the script trained as long as a 2-D tutorial does (about half a minute)


def run(quick: bool = False) -> list[dict]:
    arguments = ["--steps", "300"] if quick else []
    whole, training, finish = [], [], []
    for _ in range(1 if quick else 3):
        bare, attached, seconds = _pair(arguments)
        whole.append(attached / bare)
        training.append((attached - seconds) / bare)
        finish.append(seconds)
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    rows = []
    if not quick:
        bare, attached, seconds = _pair(["--steps", str(LONG_STEPS)])
        rows = [median_row("attach", f"whole process, attached / bare, {LONG_STEPS:,} steps", [attached / bare], "x",
                           "–", None, f"healthy_flow.py --steps {LONG_STEPS}, one pair ({bare:.1f} s bare, "
                           f"{attached:.1f} s attached, {seconds:.2f} s of it the report): the imports and the report "
                           f"are paid once, the hooks per step; {load}")]
    size = "300 steps (quick)" if quick else "1,500 steps"
    middle = sorted(whole)[len(whole) // 2]
    return [
        median_row("attach", "whole process, attached / bare", whole, "x", f"<= {GOAL}", middle <= GOAL,
                   f"healthy_flow.py, {size}, {len(whole)} pairs of fresh processes, OMP_NUM_THREADS=1, {load}"),
        median_row("attach", "whole process less the report's finish(), attached / bare", training, "x", "–", None,
                   "the hooks' and the probes' cost while the script runs, with gendiag's imports"),
        median_row("attach", "finish() of the attached run", finish, "s", "–", None,
                   "the report at the end (probes' final work, figures), as the report states it"),
        *rows,
    ]


def _pair(arguments: list[str]) -> tuple[float, float, float]:
    """Seconds of the bare script, of the attached one, and of the attached run's report (its finish())."""
    bare = _seconds([sys.executable, str(SCRIPT), *arguments])
    with tempfile.TemporaryDirectory() as folder:
        attached = _seconds([sys.executable, "-m", "gendiag.cli", "attach", "--out", folder, "--",
                             "python", str(SCRIPT), *arguments])
        report = next(Path(folder).glob("*/*/findings.json"))
        seconds = float(json.loads(report.read_text())["finish_seconds"])
    return bare, attached, seconds


def _seconds(command: list[str]) -> float:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=environment, check=True, capture_output=True)
    return time.perf_counter() - start

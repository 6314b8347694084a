"""The cost of `gendiag attach` (issue 19): whole-process time of the healthy 2-D flow script
(`cases/scripts/healthy_flow.py`, its default 1,500 steps) run bare and run as `gendiag attach -- python ...`, in
fresh processes taking turns (bare, attached, bare, ...), one torch thread each. The attached process includes
what a user pays: importing gendiag, the hooks, the probes' per-step work, and the report at the end
(`Monitor.finish`, whose own seconds the report states); the second row takes that report time out, leaving the
hooks' and the probes' cost during training. Goal (the issue's): the whole process within 1.15x of the bare one.
A reported row runs the script once more at `LONG_STEPS`, as long as 2-D tutorials train, where the imports and the
report weigh less.

Whole processes on a shared machine differ by 10% and more from one run to the next; the per-step row measures the
training step alone in one process: the script's own network, data and loop, once bare and once under the hooks
(`gendiag.attach.hooks.installed` with the `Session` `gendiag attach` uses), in blocks of `BLOCK` steps taking
turns, each step timed by the thread's CPU clock. Installing the hooks wraps `Module.__call__`, which an attached
run does once and this row once per block: the first `SETTLE` steps of every block (bare ones too), which pay for
it, are left out. It is the share a long run pays per step; the imports and the report come on top once."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import median_row

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cases" / "scripts" / "healthy_flow.py"
GOAL = 1.15


LONG_STEPS = 20_000  # a reported row: as long as flow_matching's 2-D example trains (iterations = 20001)
PER_STEP_STEPS = 8_000  # steps of each copy in the per-step row; the first WARM are left out (warm-up, full rounds)
WARM = 300
BLOCK = 100
SETTLE = 2  # steps left out at the start of each block: installing the hooks re-types every Module subclass


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
    bare_step, attached_step, recorded = _per_step(1_000 if quick else PER_STEP_STEPS)
    rows.append(median_row(
        "attach", "per step, attached / bare (in-process, thread CPU time)", [attached_step / bare_step], "x", "–",
        None, f"mean step {bare_step * 1e3:.3f} ms bare, {attached_step * 1e3:.3f} ms attached, over steps {WARM:,}-"
        f"{1_000 if quick else PER_STEP_STEPS:,} in blocks of {BLOCK} taking turns (the first {SETTLE} of each left out); "
        f"{recorded} rounds recorded"))
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


def _per_step(steps: int) -> tuple[float, float, int]:
    """Mean thread-CPU seconds of a step of the script's loop, bare and attached, and the rounds recorded."""
    import importlib.util

    import torch

    from gendiag.attach.hooks import installed
    from gendiag.attach.session import Session

    spec = importlib.util.spec_from_file_location("healthy_flow", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def loop() -> Any:
        generator = torch.Generator().manual_seed(1)
        model = script.Velocity()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        while True:
            start = time.thread_time()
            x1, x0 = script.ring(256, generator), torch.randn(256, 2, generator=generator)
            t = torch.rand(256, generator=generator)
            loss = ((model((1 - t[:, None]) * x0 + t[:, None] * x1, t) - (x1 - x0)) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            yield time.thread_time() - start

    bare, attached = loop(), loop()
    times: dict[str, list[float]] = {"bare": [], "attached": []}
    with tempfile.TemporaryDirectory() as folder:
        session = Session(Path(folder) / "run")
        try:
            for block in range(steps // BLOCK):
                kept = block * BLOCK >= WARM
                times["bare"] += [next(bare) for _ in range(BLOCK)][SETTLE:] if kept else []
                with installed(session):
                    times["attached"] += [next(attached) for _ in range(BLOCK)][SETTLE:] if kept else []
        finally:
            session.monitor.close()
            torch.set_num_threads(threads)
    return statistics.fmean(times["bare"]), statistics.fmean(times["attached"]), session.recorded_rounds


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

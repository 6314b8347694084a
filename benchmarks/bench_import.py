"""What `import gendiag` costs a training script (issue 22): seconds on top of `import torch`, and the heavy
libraries it loads before they are used.

Each repetition starts two fresh interpreters side by side, `import torch` then `import torch, gendiag` (the order
alternating), and takes the difference of their wall times; the figure is the median difference (spread: max − min
of the differences). Interpreter start-up and torch itself cancel out. Goal: ≤ 0.3 s. On a loaded machine that
difference is mostly noise (two torch imports of several seconds each), so the second row times `import gendiag`
inside the second interpreter, after torch (perf_counter around the import alone). The third row counts the
heavy libraries (matplotlib, scipy, pandas, scikit-learn, POT, TensorBoard) in sys.modules after `import gendiag`;
goal: none (they load when a probe, a figure or a report needs them)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import median_row

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "scipy", "pandas", "sklearn", "ot", "tensorboard")
GOAL_SECONDS = 0.3
LOADED = f"import gendiag, json, sys; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"


AFTER_TORCH = ("import time, torch; start = time.perf_counter(); import gendiag; "
               "print(time.perf_counter() - start)")


def _seconds(code: str) -> tuple[float, str]:
    """Wall time of a fresh interpreter that runs `code` (one torch thread, this checkout on the path), and what
    it printed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def heavy_modules() -> list[str]:
    """The heavy libraries a fresh `import gendiag` loads."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", LOADED], check=True, env=env, cwd=ROOT, capture_output=True,
                          text=True)
    return json.loads(done.stdout)


def run(quick: bool = False) -> list[dict[str, Any]]:
    repeats = 3 if quick else 7
    differences, inside = [], []
    for repeat in range(repeats):
        if repeat % 2:
            (both, printed), (alone, _) = _seconds(AFTER_TORCH), _seconds("import torch")
        else:
            (alone, _), (both, printed) = _seconds("import torch"), _seconds(AFTER_TORCH)
        differences.append(both - alone)
        inside.append(float(printed))
    extra = median_row("import", "import gendiag on top of import torch", differences, "s", f"<= {GOAL_SECONDS}",
                       None, f"median of {repeats} paired fresh interpreters (torch alone, torch and gendiag), order "
                             "alternating; spread: max − min of the differences")
    extra["met"] = None if quick else extra["median"] <= GOAL_SECONDS
    alone = median_row("import", "import gendiag after torch, timed inside the interpreter", inside, "s",
                       f"<= {GOAL_SECONDS}", None if quick else statistics.median(inside) <= GOAL_SECONDS,
                       f"median of {repeats} fresh interpreters; spread: max − min")
    loaded = heavy_modules()
    return [extra, alone, {"benchmark": "import", "figure": "heavy libraries loaded by import gendiag",
                    "median": float(len(loaded)), "spread": 0.0, "unit": "modules", "goal": "0",
                    "met": None if quick else not loaded, "note": ", ".join(loaded) or f"none of {', '.join(HEAVY)}"}]

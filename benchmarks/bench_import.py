"""What `import gendiag` costs a training script (issue 22): seconds on top of `import torch`, and the heavy
libraries it loads before they are used.

Each repetition starts two fresh interpreters side by side, `import torch` then `import torch, gendiag` (the order
alternating), and takes the difference of their wall times; the figure is the median difference (spread: max − min
of the differences). Interpreter start-up and torch itself cancel out. Goal: ≤ 0.3 s. The second row counts the
heavy libraries (matplotlib, scipy, pandas, scikit-learn, POT, TensorBoard) in sys.modules after `import gendiag`;
goal: none (they load when a probe, a figure or a report needs them)."""

from __future__ import annotations

import json
import os
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


def _seconds(code: str) -> float:
    """Wall time of a fresh interpreter that runs `code` (one torch thread, this checkout on the path)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def heavy_modules() -> list[str]:
    """The heavy libraries a fresh `import gendiag` loads."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", LOADED], check=True, env=env, cwd=ROOT, capture_output=True,
                          text=True)
    return json.loads(done.stdout)


def run(quick: bool = False) -> list[dict[str, Any]]:
    repeats = 3 if quick else 9
    differences = []
    for repeat in range(repeats):
        if repeat % 2:
            both, alone = _seconds("import torch, gendiag"), _seconds("import torch")
        else:
            alone, both = _seconds("import torch"), _seconds("import torch, gendiag")
        differences.append(both - alone)
    extra = median_row("import", "import gendiag on top of import torch", differences, "s", f"<= {GOAL_SECONDS}",
                       None, f"median of {repeats} paired fresh interpreters (torch alone, torch and gendiag), order "
                             "alternating; spread: max − min of the differences")
    extra["met"] = None if quick else extra["median"] <= GOAL_SECONDS
    loaded = heavy_modules()
    return [extra, {"benchmark": "import", "figure": "heavy libraries loaded by import gendiag",
                    "median": float(len(loaded)), "spread": 0.0, "unit": "modules", "goal": "0",
                    "met": None if quick else not loaded, "note": ", ".join(loaded) or f"none of {', '.join(HEAVY)}"}]

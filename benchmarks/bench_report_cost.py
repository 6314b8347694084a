"""The report's own cost (issue 23): the time `Monitor.finish()` takes after the README's own loop (its first
```python block: flow matching, 500 steps, default probes), as the report states it (findings.json
`finish_seconds`). Each repetition runs the block in a fresh process, so the lazy imports finish() makes
(matplotlib, POT) are counted as a user pays them. An absolute time against the issue's goal, so it depends on how
busy the machine is: the note gives the threads and the load."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import median_row

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 2.0
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def run(quick: bool = False) -> list[dict]:
    code = BLOCK.search((ROOT / "README.md").read_text(encoding="utf-8")).group(1)
    seconds = [_finish_seconds(code) for _ in range(1 if quick else 3)]
    middle = sorted(seconds)[len(seconds) // 2]
    return [median_row("report_cost", "finish() after the README loop", seconds, "s", f"<= {GOAL_SECONDS:g} s",
                       middle <= GOAL_SECONDS,
                       f"{len(seconds)} fresh processes, OMP_NUM_THREADS=1, load average "
                       f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")]


def _finish_seconds(code: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", code], cwd=folder, env=environment, check=True, capture_output=True)
        return float(json.loads((Path(folder) / "runs/my_flow/findings.json").read_text())["finish_seconds"])

"""The report's own cost (issue 23): the time `Monitor.finish()` takes after the README's own loop (its first
```python block: flow matching, 500 steps, default probes), as the report states it (findings.json
`finish_seconds`). Each repetition runs the block in a fresh process, so the lazy imports finish() makes
(matplotlib, POT) are counted as a user pays them. An absolute time against the issue's goal, so it depends on how
busy the machine is: the note gives the threads and the load; the CPU seconds of the training process and of the
figure-drawing children are reported beside it, as they depend less on the load."""

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
    measured = [_finish_seconds(code) for _ in range(1 if quick else 3)]
    wall, own, children = ([m[k] for m in measured] for k in ("wall", "cpu", "children_cpu"))
    middle = sorted(wall)[len(wall) // 2]
    note = (f"{len(wall)} fresh processes, OMP_NUM_THREADS=1, load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores")
    return [median_row("report_cost", "finish() after the README loop", wall, "s", f"<= {GOAL_SECONDS:g} s",
                       middle <= GOAL_SECONDS, note),
            median_row("report_cost", "finish(): CPU in the training process", own, "s", "reported", None,
                       "CPU seconds, less sensitive to the machine's load than the wall time; " + note),
            median_row("report_cost", "finish(): CPU in the figure-drawing children", children, "s", "reported", None,
                       "CPU seconds of the forked processes that draw the figures (gendiag.figures.drawing), run "
                       "beside the training process; " + note)]


# Runs the README's block with Monitor.finish timed: wall and CPU seconds of this process and of its children.
TIMED = """
import json, resource, time, gendiag
_finish = gendiag.Monitor.finish
def finish(self, **kwargs):
    start, cpu = time.perf_counter(), time.process_time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        return _finish(self, **kwargs)
    finally:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open("finish_cost.json", "w") as stream:
            json.dump({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                       "children_cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}, stream)
gendiag.Monitor.finish = finish
"""


def _finish_seconds(code: str) -> dict[str, float]:
    """finish()'s wall time as the report states it (findings.json `finish_seconds`) and its CPU seconds."""
    with tempfile.TemporaryDirectory() as folder:
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", TIMED + code], cwd=folder, env=environment, check=True,
                       capture_output=True)
        cost = json.loads((Path(folder) / "finish_cost.json").read_text())
        cost["wall"] = float(json.loads((Path(folder) / "runs/my_flow/findings.json").read_text())["finish_seconds"])
        return cost

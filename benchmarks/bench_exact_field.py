"""Exact marginal velocity field (issue 8, item 3): 10,000 data points, 4,096 query points, in D = 2 and D = 4,096;
time and peak memory of the chunked computation against the Q × M logits a one-shot softmax would hold.

Peak memory is torch's CPU allocator as the torch profiler records it (the largest "Total Allocated" of its memory
events during the call; tracemalloc cannot see torch's allocations)."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile

from gendiag.flow import exact_velocity

DATA_POINTS = 10_000
QUERIES = 4_096
CHUNK, DATA_CHUNK = 1024, 4096


def peak_allocated_bytes(fn: Callable[[], Any]) -> int:
    """The peak of torch's CPU allocations (bytes, above what was live before) while `fn()` runs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return max([0, *totals])


def run(quick: bool = False) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    repeats = 1 if quick else 3
    rows: list[dict] = []
    for dim in (2, 4096):
        points, queries = (1000, 256) if quick else (DATA_POINTS, QUERIES)
        data = torch.randn(points, dim, generator=gen)
        x = torch.randn(queries, dim, generator=gen)
        t = torch.rand(queries, generator=gen) * 0.99

        def call() -> torch.Tensor:
            return exact_velocity(x, t, data, chunk=CHUNK, data_chunk=DATA_CHUNK)

        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        output = queries * dim * 4 / 2**20
        working = peak_allocated_bytes(call) / 2**20 - output
        one_shot = queries * points * 4 / 2**20
        size = f"M={points}, Q={queries}, D={dim}, float32, chunks {CHUNK}×{DATA_CHUNK}"
        rows.append({"benchmark": "exact_field", "figure": f"time D={dim}", "median": statistics.median(seconds),
                     "spread": max(seconds) - min(seconds), "unit": "s", "goal": None, "met": None,
                     "note": f"{size}; spread = max − min over {repeats} runs"})
        rows.append({"benchmark": "exact_field", "figure": f"peak working memory D={dim}", "median": working,
                     "spread": 0.0, "unit": "MiB", "goal": f"< one-shot Q×M logits ({one_shot:.0f} MiB)",
                     "met": working < one_shot,
                     "note": f"{size}; torch profiler (peak of torch's CPU allocations during one call, "
                             f"deterministic), minus the {output:.0f} MiB output"})
    return rows

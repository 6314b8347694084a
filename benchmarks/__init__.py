"""Speed and quality benchmarks: `python -m benchmarks` (see __main__.py)."""

from __future__ import annotations

import statistics
from typing import Any


def median_row(benchmark: str, figure: str, values: list[float], unit: str, goal: str, met: bool | None,
               note: str) -> dict[str, Any]:
    """One results row: the median of `values` and their max − min spread (0 for a single value)."""
    return {"benchmark": benchmark, "figure": figure, "median": float(statistics.median(values)),
            "spread": float(max(values) - min(values)) if len(values) > 1 else 0.0, "unit": unit, "goal": goal,
            "met": met, "note": note}

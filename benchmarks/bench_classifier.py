"""The digit classifier that the quality metrics use: the seconds to train it from an empty cache (what a first
run that needs it waits for) and its held-out accuracy. Once cached it loads in milliseconds; the tests check what
it computes, this measures how long building it takes (goal: under 30 s on 2 cores)."""

from __future__ import annotations

import tempfile
import time

from benchmarks import median_row
from gendiag.metrics.classifier import load_classifier

GOAL_SECONDS = 30.0


def run(quick: bool = False) -> list[dict]:
    seconds: list[float] = []
    accuracy: list[float] = []
    for _ in range(1 if quick else 3):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            classifier = load_classifier("digits", cache_dir=cache)
            seconds.append(time.perf_counter() - start)
            accuracy.append(classifier.heldout_accuracy)
    return [
        median_row("classifier/digits", "seconds to train from an empty cache", seconds, "s",
                   f"< {GOAL_SECONDS:.0f} s", max(seconds) < GOAL_SECONDS, f"builds: {len(seconds)}, one process"),
        median_row("classifier/digits", "held-out accuracy", accuracy, "", "> 0.95", min(accuracy) > 0.95,
                   "8x8 digits, seed 0"),
    ]

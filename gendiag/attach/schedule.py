"""Which rounds `gendiag attach` records (in the manner of Cockpit's quantities, each with its schedule): the first
`FULL_ROUNDS` after the warm-up all, then every k-th, with k the smallest power of two that keeps gendiag's share
of the script's time under `SHARE`, and at most the batch size over `ROWS_PER_ROUND` (the per-sample statistics,
the loss by t above all, need rows: a small-batch script is recorded every round). On the other rounds the hooks
only count calls and steps.

k is chosen from the rounds' own durations (from one step of the first optimizer to its next): the script's step
time is the median duration of rounds gendiag left alone, and the cost of a recorded round the time the last
`WINDOW` rounds took beyond that, shared among the recorded rounds among them. The times are given by the caller,
so the choice is deterministic for given durations."""

from __future__ import annotations

from collections import deque

import numpy as np

SHARE = 0.05  # gendiag's share of the script's time while it trains; its imports and the report come on top
FULL_ROUNDS = 64  # rounds recorded in full after the warm-up: a short run (a test, a first try) is seen whole
LONGEST = 64  # the longest interval: a long run is still recorded often enough for the probes' curves
ROWS_PER_ROUND = 16  # rows of a training batch per round, on average, the recorded rounds must give
WINDOW = 64  # rounds whose durations choose k


def interval(step_seconds: float, cost_seconds: float, share: float = SHARE, longest: int = LONGEST) -> int:
    """The smallest power of two k with cost_seconds <= share * k * step_seconds (recording one round in k costs
    the script at most `share` of its time), or the largest power of two up to `longest`."""
    every = 1
    while every * 2 <= longest and cost_seconds > share * every * step_seconds:
        every *= 2
    return every


class Schedule:
    """Decides round by round whether a round is recorded, and learns k from the durations it is told."""

    def __init__(self, first_round: int, share: float = SHARE, full_rounds: int = FULL_ROUNDS,
                 longest: int = LONGEST) -> None:
        self.first_round, self.full_until = first_round, first_round + full_rounds - 1
        self.share, self.longest = share, longest
        self.every = 1
        self.decided: dict[int, bool] = {}
        self.durations: deque[tuple[float, bool, bool]] = deque(maxlen=WINDOW)  # (seconds, quiet, recorded)
        self.warmup: list[float] = []
        self.step_seconds: float | None = None
        self.cost_seconds: float | None = None
        self.batch: int | None = None  # the smallest training batch seen

    def records(self, round_: int) -> bool:
        """Whether round `round_` is recorded (never one before `first_round`); asked again, the same answer even
        where k changed in between."""
        decided = self.decided.get(round_)
        if decided is None:
            decided = self.decided[round_] = self.first_round <= round_ and (
                round_ <= self.full_until or round_ % self.every == 0)
            self.decided.pop(round_ - 8, None)
        return decided

    def saw_batch(self, rows: int) -> None:
        """A training call on `rows` rows."""
        self.batch = rows if self.batch is None else min(self.batch, rows)

    def unwatched(self, seconds: float) -> None:
        """The duration of a warm-up round (before anything was recorded): the first estimate of a step's time."""
        self.warmup.append(seconds)

    def round_took(self, round_: int, seconds: float) -> None:
        """Round `round_` took `seconds` (from the step before it to its own). Its span also held gendiag's work on
        the two rounds before it (the report of `round_ - 2`, the gradients of `round_ - 1`); where none of the three
        is recorded it is the script's own time. k is chosen again after each recorded round."""
        quiet = not any(self.records(r) for r in (round_ - 2, round_ - 1, round_))
        self.durations.append((seconds, quiet, self.records(round_)))
        if quiet or round_ <= self.full_until and round_ % 8:
            return
        quiet_ones = [d for d, alone, _ in self.durations if alone] or self.warmup
        if not quiet_ones:
            return
        self.step_seconds = float(np.median(quiet_ones))
        recorded = sum(kept for _, _, kept in self.durations)
        extra = sum(d - self.step_seconds for d, _, _ in self.durations)
        self.cost_seconds = max(extra / max(recorded, 1), 0.0)
        longest = self.longest if self.batch is None else min(self.longest, self.batch // ROWS_PER_ROUND)
        self.every = interval(self.step_seconds, self.cost_seconds, self.share, longest)

"""Which rounds `gendiag attach` records (in the manner of Cockpit's quantities, each with its schedule): the first
`FULL_ROUNDS` after the warm-up all, then every k-th, with k the smallest power of two that keeps gendiag's share
of the script's time under `SHARE`, and at most the batch size over `ROWS_PER_ROUND` (the per-sample statistics,
the loss by t above all, need rows: a small-batch script is recorded every round). On the other rounds the hooks
only count calls and steps.

k is chosen from the rounds' own durations (from one step of the first optimizer to its next): the script's step
time is the median duration of the last `WINDOW` rounds gendiag left alone, and the cost of a recorded round the
median, over the last `WINDOW` recorded rounds past the full ones, of the time the spans it touched took beyond
the step time of their moment (medians: a shared machine's pauses land on any round; the full rounds are left
out: one recorded among recorded ones costs several times less than one among rounds left alone; the step time
of the moment: where it changes, costs measured against an older one would read as nothing or as much). k is
at least `TIMED` where the batch allows it, so that rounds are still left alone to time the script by: with none,
a step time measured once on a busy machine would stand for ever. The times are given by the caller, so the
choice is deterministic for given durations."""

from __future__ import annotations

from collections import Counter, deque
from statistics import median

# gendiag's share of the script's time while it trains, as the rounds' durations show it; its imports and the report
# come on top. The durations see about half of what recording costs: the rounds after a recorded one run slower too
# (the probes' work evicts the script's code and data from the caches). Measured in one process on the healthy flow
# script: a 5% share cost 11% a step in all, 2% cost 7%.
SHARE = 0.02
FULL_ROUNDS = 64  # rounds recorded in full after the warm-up: a short run (a test, a first try) is seen whole
LONGEST = 128  # the longest interval: a long run is still recorded often enough for the probes' curves
ROWS_PER_ROUND = 2  # rows of a training batch per round, on average, the recorded rounds must give
WINDOW = 64  # rounds whose durations choose k
TIMED = 4  # the shortest interval that leaves rounds alone to time the script by (below it each touches a recorded one)


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
        self.alone: deque[float] = deque(maxlen=WINDOW)  # durations of spans without gendiag's work
        self.spans: dict[int, list[float]] = {}  # recorded round -> [its share of its spans' seconds, of the spans]
        self.costs: deque[float] = deque(maxlen=WINDOW)  # of complete recorded rounds: their spans beyond the script's
        self.warmup: list[float] = []
        self.step_seconds: float | None = None
        self.cost_seconds: float | None = None
        self.batches: Counter[int] = Counter()  # rows of the training calls seen

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
        self.batches[rows] += 1

    @property
    def batch(self) -> int | None:
        """The commonest training batch (an epoch's short last batch does not count), None before any."""
        return self.batches.most_common(1)[0][0] if self.batches else None

    def unwatched(self, seconds: float) -> None:
        """The duration of a warm-up round (before anything was recorded): the first estimate of a step's time."""
        self.warmup.append(seconds)

    def round_took(self, round_: int, seconds: float) -> None:
        """Round `round_` took `seconds` (from the step before it to its own). Its span also held gendiag's work on
        the two rounds before it (the report of `round_ - 2`, the gradients of `round_ - 1`): where none of the three
        is recorded it is the script's own time, else it is shared among the recorded ones. k is chosen again at each
        recorded round from the last of the full ones on: the first time, before any round was left alone, the
        longest allowed, so that some are and can be timed (where k cannot reach `TIMED`, no span is left alone and
        the warm-up's rounds stand for the script's)."""
        touching = [r for r in (round_ - 2, round_ - 1, round_) if self.records(r)]
        if not touching:
            self.alone.append(seconds)
        for r in touching:
            spans = self.spans.setdefault(r, [0.0, 0.0])
            spans[0] += seconds / len(touching)
            spans[1] += 1 / len(touching)
        if round_ - 2 in self.spans:
            total, share = self.spans.pop(round_ - 2)
            steps = self._script_rounds()
            if steps and (round_ - 2 > self.full_until or self.longest_allowed() < TIMED):  # below TIMED all are full
                self.costs.append(total - share * median(steps))  # against the step time of its own moment
        if not self.records(round_) or round_ < self.full_until:
            return
        longest, steps = self.longest_allowed(), self._script_rounds()
        if not steps or not self.costs:
            self.every = max(longest, 1)
            return
        self.step_seconds = median(steps)
        self.cost_seconds = max(median(self.costs), 0.0)
        shortest = TIMED if longest >= TIMED else 1
        self.every = max(interval(self.step_seconds, self.cost_seconds, self.share, longest), shortest)

    def _script_rounds(self) -> deque[float] | list[float]:
        """The durations that stand for the script's own rounds: those left alone, or the warm-up's where k cannot
        reach `TIMED` (none is left alone then)."""
        return self.alone or (self.warmup if self.longest_allowed() < TIMED else [])

    def longest_allowed(self) -> int:
        """The longest interval allowed: `longest`, and at most the batch over `ROWS_PER_ROUND`."""
        return self.longest if self.batch is None else min(self.longest, self.batch // ROWS_PER_ROUND)

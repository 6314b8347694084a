"""Which steps a per-step series is logged at, so TensorBoard gets a readable curve without a point per step
(each TensorBoard write wakes its writer thread, which costs far more than the probes' own per-step work).

The run's length is unknown in advance, so the stride starts at `first` steps and doubles each time `budget`
points have been taken at the current stride: a run of N steps logs at most N / first points and about
budget * (1 + log2(N / (first * budget)) / 2) once it is longer than first * budget steps."""

from __future__ import annotations


class LogStride:
    """`take(step)` is True at the steps to log: every `first` steps, then every 2·first, 4·first, ... steps."""

    def __init__(self, budget: int = 500, first: int = 10) -> None:
        if budget < 2 or first < 1:
            raise ValueError(f"LogStride: budget must be >= 2 and first >= 1, got {budget} and {first}")
        self.budget = budget
        self.stride = first
        self._taken = 0

    def take(self, step: int) -> bool:
        if step % self.stride:
            return False
        self._taken += 1
        if self._taken >= self.budget:
            self.stride *= 2
            self._taken = self.budget // 2
        return True

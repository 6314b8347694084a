"""A bounded, uniformly sampled store of rows (reservoir sampling) with an optional time per row.

Probes keep data points and network inputs in these so memory stays fixed however long training runs. Once full,
it uses Li's "Algorithm L": it draws how many offered rows to skip before the next one it keeps, so a call whose
rows are all skipped costs a comparison, not a copy. Every row offered has the same chance to be kept, wherever it
sits in its batch and whichever call brought it. The rows are read back in random order, so any prefix of `rows` is
itself a uniform sample: a batch whose rows come in order (two moons along the arc) does not come back as one blob
at the front. The rows are kept on the device of the first batch offered (adding never makes the host wait for a
GPU) and come back to the CPU when read. The draws come from the reservoir's own seeded generators, never the
user's nor torch's global one."""

from __future__ import annotations

import math
import random
from typing import Any

import torch


def capacity_for(dim: int, small: int, large: int, budget: int = 2**21) -> int:
    """Rows to keep for rows of `dim` numbers: `small` for 2-D points, else `large` capped at `budget` numbers."""
    if dim <= 2:
        return small
    return max(16, min(large, budget // max(dim, 1)))


class Reservoir:
    """Keeps at most `capacity` rows (flattened to (D,)) chosen uniformly from all rows offered so far, read back in
    random order."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"Reservoir: capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.seed = seed
        self.seen = 0
        self.sample_shape: tuple[int, ...] | None = None
        self._rows: torch.Tensor | None = None
        self._times: torch.Tensor | None = None
        self._random = random.Random(seed)
        self._generator = torch.Generator().manual_seed(seed)
        self._shuffled = True  # whether the stored order is uniformly random (filling appends in stream order)
        self._weight = 1.0
        self._next_kept = capacity  # stream index of the next row to keep once full

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    @property
    def rows(self) -> torch.Tensor:
        """(N, D) float32 rows kept, in random order, on the CPU."""
        if self._rows is None:
            return torch.empty(0, 0)
        self._shuffle()
        return self._rows[: len(self)].cpu()

    @property
    def times(self) -> torch.Tensor:
        """(N,) times of the rows kept (NaN where none was given), in the order of `rows`, on the CPU."""
        if self._times is None:
            return torch.empty(0)
        self._shuffle()
        return self._times[: len(self)].cpu()

    def _shuffle(self) -> None:
        """Put the stored rows in uniformly random order, once after rows were appended while filling: a full
        reservoir replaces uniformly chosen slots, which keeps a random order random, so this is paid at most once
        per read after filling, not per call."""
        if self._shuffled:
            return
        order = torch.randperm(len(self), generator=self._generator).to(self._rows.device, non_blocking=True)
        self._rows[: len(self)] = self._rows[order]
        self._times[: len(self)] = self._times[order]
        self._shuffled = True

    def add(self, batch: torch.Tensor, times: torch.Tensor | None = None) -> None:
        """Offer rows `batch` (B, ...) with optional times (B,); keeps each offered row with equal chance."""
        count = batch.shape[0]
        width = math.prod(batch.shape[1:])
        if self._rows is None:
            self.sample_shape = tuple(batch.shape[1:])
            self._rows = torch.empty(self.capacity, width, device=batch.device)
            self._times = torch.full((self.capacity,), float("nan"), device=batch.device)
        elif width != self._rows.shape[1]:
            raise ValueError(f"Reservoir: rows of {width} numbers offered to a reservoir of rows of "
                             f"{self._rows.shape[1]}")
        flat = batch.detach().reshape(count, width)
        flat_times = None if times is None else times.detach().reshape(-1).to(flat.device, non_blocking=True)
        filling = min(max(self.capacity - self.seen, 0), count)
        if filling:  # not yet full: the first rows go to the next free slots, one slice copy
            self._rows[self.seen: self.seen + filling] = flat[:filling]
            if flat_times is not None:
                self._times[self.seen: self.seen + filling] = flat_times[:filling]
            self._shuffled = False
            if self.seen + filling == self.capacity:
                self._weight = math.exp(math.log(self._uniform()) / self.capacity)
                self._next_kept = self.capacity + self._skip()
        taken: dict[int, int] = {}  # slot -> row of this batch (a later row overrides an earlier one)
        while self._next_kept < self.seen + count:
            taken[self._random.randrange(self.capacity)] = self._next_kept - self.seen
            self._weight *= math.exp(math.log(self._uniform()) / self.capacity)
            self._next_kept += self._skip() + 1
        self.seen += count
        if not taken:
            return
        slots = torch.tensor(list(taken), dtype=torch.long).to(self._rows.device, non_blocking=True)
        chosen = torch.tensor(list(taken.values()), dtype=torch.long).to(flat.device, non_blocking=True)
        self._rows[slots] = flat[chosen].to(self._rows)
        self._times[slots] = float("nan") if flat_times is None else flat_times[chosen].to(self._times)

    def kept(self) -> dict[str, Any]:
        """What it holds, on the CPU and picklable, for `merge` in another process: the rows in random order, their
        times, how many rows were offered, the row shape, its capacity and seed."""
        return {"rows": self.rows, "times": self.times, "seen": self.seen, "shape": self.sample_shape,
                "capacity": self.capacity, "seed": self.seed}

    def merge(self, parts: list[dict[str, Any]]) -> None:
        """Hold, in place of its rows, a uniform sample of every row offered to the reservoirs whose `kept()` are
        `parts` (this one's among them: the ranks' reservoirs at `finish`): as many rows as it keeps, every row
        offered to any of them equally likely, in random order, drawn with its own generators. Rows offered later
        are kept as by one reservoir offered all of those. Raises ValueError where the parts' rows differ in shape
        or a part kept fewer rows than the draw asks of it (a smaller capacity)."""
        shapes = {part["shape"] for part in parts if part["seen"]}
        if len(shapes) > 1:
            raise ValueError(f"Reservoir.merge: rows of shapes {sorted(shapes)} cannot be merged")
        seen = sum(part["seen"] for part in parts)
        if not seen:
            return
        counts = _drawn_counts([part["seen"] for part in parts], min(seen, self.capacity), self._generator)
        for part, count in zip(parts, counts):
            if count > len(part["rows"]):
                raise ValueError(f"Reservoir.merge: a part kept {len(part['rows'])} of its {part['seen']} rows and "
                                 f"{count} were drawn from it; it needs a capacity of at least {self.capacity}")
        taken = [(part["rows"][:count], part["times"][:count]) for part, count in zip(parts, counts) if count]
        order = torch.randperm(sum(counts), generator=self._generator)
        rows, times = torch.cat([r for r, _ in taken])[order], torch.cat([t for _, t in taken])[order]
        device = self._rows.device if self._rows is not None else torch.device("cpu")
        self.sample_shape = shapes.pop()
        self._rows = torch.empty(self.capacity, rows.shape[1], device=device)
        self._times = torch.full((self.capacity,), float("nan"), device=device)
        self._rows[: len(rows)], self._times[: len(rows)] = rows.to(device), times.to(device)
        self.seen, self._shuffled = seen, True
        if seen >= self.capacity:  # Algorithm L's weight: the capacity-th smallest of `seen` uniform keys (Renyi)
            spacing = sum(-math.log(self._uniform()) / (seen - i) for i in range(self.capacity))
            self._weight = -math.expm1(-spacing)
            self._next_kept = seen + self._skip()

    def _uniform(self) -> float:
        return 1.0 - self._random.random()  # in (0, 1]: safe for log

    def _skip(self) -> int:
        if self._weight >= 1.0:
            return 0
        return int(math.floor(math.log(self._uniform()) / math.log1p(-self._weight)))


def _drawn_counts(sizes: list[int], draws: int, generator: torch.Generator) -> list[int]:
    """How many of `draws` rows drawn without replacement from groups of `sizes` rows come from each group (a
    multivariate hypergeometric draw, one uniform per row drawn)."""
    left, counts, remaining = list(sizes), [0] * len(sizes), sum(sizes)
    for uniform in torch.rand(draws, generator=generator, dtype=torch.float64).tolist():
        point, group = min(int(uniform * remaining), remaining - 1), 0
        while point >= left[group]:
            point -= left[group]
            group += 1
        left[group] -= 1
        counts[group] += 1
        remaining -= 1
    return counts

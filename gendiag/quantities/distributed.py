"""Fingerprints of what each rank of a multi-process run draws and reads, and the two measures made on them: how
often two ranks drew the very same times or noise (`matching_share`) and whether a rank's data batches come back in
the same order epoch after epoch (`repeat_period`).

A fingerprint is three float64 numbers per tensor (its sum, its sum of squares and a sum weighted by position, so
that a reordering of the same values changes it): equal draws give equal fingerprints bit for bit, different draws
of continuous values practically never do. They are written into a buffer preallocated on the tensor's own device,
with no host synchronisation, and read once, at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

CAPACITY = 4096  # tensors fingerprinted per stream; later ones are not


class Fingerprints:
    """The fingerprints of one stream of tensors (a rank's times, its noise batches or its data batches), in the
    order they came, up to CAPACITY."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.buffer: torch.Tensor | None = None
        self.sizes: list[int] = []
        self._weights: dict[tuple[int, torch.device], torch.Tensor] = {}

    def add(self, values: torch.Tensor) -> None:
        """Fingerprint one tensor (no copy to the host)."""
        if len(self.sizes) >= self.capacity:
            return
        flat = values.detach().reshape(-1).to(torch.float64)
        if self.buffer is None:
            self.buffer = torch.zeros(self.capacity, 3, dtype=torch.float64, device=flat.device)
        key = (flat.numel(), flat.device)
        if key not in self._weights:
            self._weights[key] = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        self.buffer[len(self.sizes)] = torch.stack([flat.sum(), flat.square().sum(), (flat * self._weights[key]).sum()])
        self.sizes.append(flat.numel())

    def table(self) -> list[tuple[int, float, float, float]]:
        """(size, sum, sum of squares, weighted sum) per tensor, in order, read from the device once."""
        if self.buffer is None:
            return []
        rows = self.buffer[:len(self.sizes)].cpu().tolist()
        return [(size, *row) for size, row in zip(self.sizes, rows)]


@dataclass
class Matching:
    """How one rank's stream compares with rank 0's, tensor by tensor in order."""

    compared: int
    equal: int
    varies: bool  # whether the stream changes from one tensor to the next on rank 0 (a drawn stream, not fixed)

    @property
    def share(self) -> float:
        return self.equal / self.compared if self.compared else 0.0


def matching_share(reference: list[tuple], other: list[tuple]) -> Matching:
    """How many of the tensors two ranks fingerprinted in the same order are equal (the n-th against the n-th)."""
    pairs = list(zip(reference, other))
    return Matching(compared=len(pairs), equal=sum(a == b for a, b in pairs), varies=len(set(reference)) > 1)


@dataclass
class Repetition:
    """Whether a stream of batches repeats itself with a fixed period (in batches)."""

    batches: int
    period: int | None  # the most common distance back to the same batch, None when no batch came twice
    repeats: int  # batches equal to the one `period` batches earlier

    @property
    def share(self) -> float:
        """Of the batches that could repeat one `period` back, the share that did."""
        if self.period is None or self.batches <= self.period:
            return 0.0
        return self.repeats / (self.batches - self.period)


def repeat_period(table: list[tuple]) -> Repetition:
    """The period with which a stream's batches come back, from their fingerprints in order."""
    last: dict[tuple, int] = {}
    lags: Counter[int] = Counter()
    for index, fingerprint in enumerate(table):
        if fingerprint in last:
            lags[index - last[fingerprint]] += 1
        last[fingerprint] = index
    if not lags:
        return Repetition(batches=len(table), period=None, repeats=0)
    period, repeats = lags.most_common(1)[0]
    return Repetition(batches=len(table), period=period, repeats=repeats)

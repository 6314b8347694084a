"""A few rows of a batch, chosen without bias: at random, from a generator that belongs to whoever keeps them.

A user's data helper may return its rows in order (two moons ordered along the arc, one class after another), so
the first rows of a batch are not a sample of it. Every place that keeps some of a batch's rows picks them here:
uniformly without replacement and in random order, so that any prefix of the rows kept is itself a uniform sample
of the batch. The row numbers are drawn on the CPU from the picker's own seeded `torch.Generator`, never from the
user's generators nor from torch's global one; the rows are then gathered on the batch's own device.
"""

from __future__ import annotations

from typing import Any

import torch


class RowPicker:
    """Chooses `keep` of a batch's rows uniformly at random, in random order, from its own generator seeded with
    `seed`."""

    def __init__(self, seed: int) -> None:
        self._generator = torch.Generator().manual_seed(seed)

    def indices(self, count: int, keep: int) -> torch.Tensor | None:
        """min(count, keep) distinct row numbers out of `count`, in random order (CPU, int64); None for a batch of
        one row. A batch of no more than `keep` rows is kept whole but still shuffled, so that a prefix of what is
        kept is a uniform sample whatever the batch size."""
        if count <= 1:
            return None
        return torch.randperm(count, generator=self._generator)[:keep]

    def take(self, batch: torch.Tensor, keep: int) -> torch.Tensor:
        """`keep` rows of `batch` (its first dimension) chosen uniformly, in random order."""
        return take_rows(batch, self.indices(int(batch.shape[0]), keep))


def take_rows(batch: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """The rows `index` of `batch` along its first dimension, gathered on the batch's device (all rows for None)."""
    if index is None:
        return batch
    return batch.index_select(0, index.to(batch.device, non_blocking=True))  # the host does not wait


def aligned_rows(values: tuple[Any, ...], keep: int, picker: RowPicker) -> list[torch.Tensor | None]:
    """At most `keep` rows of each tensor in `values` (None for anything that is not a tensor), detached. Tensors with
    the same number of rows get the same rows, so the inputs, the time and the output of one call stay aligned."""
    chosen: dict[int, torch.Tensor | None] = {}
    kept: list[torch.Tensor | None] = []
    for value in values:
        if not isinstance(value, torch.Tensor):
            kept.append(None)
            continue
        value = value.detach()
        if value.dim() > 0:
            count = int(value.shape[0])
            if count not in chosen:
                chosen[count] = picker.indices(count, keep)
            value = take_rows(value, chosen[count])
        kept.append(value)
    return kept

"""Generated samples against the training rows the loop showed and held-out real samples: a reservoir of training
rows (`TrainingRows`), the last samples, and their comparison (`Copying`: `gendiag.metrics.memorization`'s
near-copy share and data-copying test, and near-duplicate pairs among generated and among held-out samples),
cached on what has been gathered since it was computed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gendiag.metrics.memorization import Memorization, birthday_support, duplicate_pairs, memorization

MAX_TRAIN_ROWS = 10_000
MAX_TRAIN_VALUES = 20_000_000  # float32 values kept (80 MB) however wide the rows
MAX_COMPARED = 2_500  # generated and held-out samples compared


class TrainingRows:
    """A uniform reservoir of the training rows offered (flattened float32), drawn with its own generator."""

    def __init__(self, seed: int = 0) -> None:
        self.rows: torch.Tensor | None = None
        self.shape: tuple[int, ...] | None = None  # of one row before flattening
        self.seen = 0
        self.generator = torch.Generator().manual_seed(seed)

    def add(self, batch: torch.Tensor) -> None:
        rows = batch.detach().float().cpu()
        self.shape = tuple(rows.shape[1:])
        rows = rows.reshape(len(rows), -1)
        capacity = max(2, min(MAX_TRAIN_ROWS, MAX_TRAIN_VALUES // rows.shape[1]))
        if self.rows is None:
            self.rows = torch.empty(0, rows.shape[1])
        if rows.shape[1] != self.rows.shape[1]:
            raise ValueError(f"memorization: training batches changed width from {self.rows.shape[1]} to "
                             f"{rows.shape[1]} values per sample")
        free = capacity - len(self.rows)
        if free > 0:
            self.rows = torch.cat([self.rows, rows[:free]])
        rest = rows[max(free, 0):]
        if len(rest):  # reservoir sampling: row number n replaces a kept row with probability capacity / n
            numbers = self.seen + max(free, 0) + torch.arange(1, len(rest) + 1)
            slots = (torch.rand(len(rest), generator=self.generator) * numbers).long()
            keep = slots < capacity
            slots, rest = slots[keep], rest[keep]
            # of the rows that drew one slot, the last one offered holds it (index_put leaves ties undefined)
            last = torch.full((capacity,), -1, dtype=torch.long).scatter_reduce_(
                0, slots, torch.arange(len(slots)), "amax")
            filled = last >= 0
            self.rows[filled] = rest[last[filled]]
        self.seen += len(rows)


@dataclass(frozen=True)
class Copying:
    """The comparison: `result` for the compared `generated` samples against the distinct `train` rows, and the
    near-duplicate pairs (`duplicates`: threshold, n, generated_pairs, heldout_pairs, support_estimate)."""

    result: Memorization
    duplicates: dict[str, Any]
    generated: np.ndarray
    train: np.ndarray
    n_heldout: int


def near_duplicates(result: Memorization, generated: np.ndarray, heldout: np.ndarray,
                    quantile: float) -> dict[str, Any]:
    """Near-duplicate pairs among generated samples and among as many held-out samples, at the held-out samples'
    `quantile` of distance to the training set; the birthday-paradox support estimate from the generated pairs."""
    n = min(len(generated), len(heldout))
    threshold = float(np.quantile(result.heldout_distance, quantile))
    if not threshold > 0:
        return {"threshold": threshold, "n": n, "generated_pairs": 0, "heldout_pairs": 0,
                "support_estimate": math.inf}
    generated_pairs = duplicate_pairs(generated[:n], threshold)
    return {"threshold": threshold, "n": n, "generated_pairs": generated_pairs,
            "heldout_pairs": duplicate_pairs(heldout[:n], threshold),
            "support_estimate": birthday_support(n, generated_pairs)}


class CopyWatch:
    """Training rows, held-out `reference` samples and the last generated samples; `copying(copy_quantile)`
    compares them (at most `MAX_COMPARED` of each, drawn with a copy of the reservoir's generator, so the
    comparison changes nothing kept and gives the same draws however often it runs)."""

    def __init__(self, reference: torch.Tensor) -> None:
        self.reference = reference.detach().float().cpu()
        self.train = TrainingRows()
        self.samples: torch.Tensor | None = None
        self.samples_step: int | None = None
        self._gathered = 0
        self._copying: tuple[tuple[int, float], Copying] | None = None

    def add_data(self, batch: torch.Tensor) -> None:
        self.train.add(batch)
        self._gathered += 1

    def add_samples(self, samples: torch.Tensor, step: int) -> None:
        self.samples = samples.detach().float().cpu()
        self.samples_step = step
        self._gathered += 1

    def missing(self) -> list[str]:
        """What was not observed yet, of the training batches and the generated samples."""
        return [what for what, value in (("training batches (observe_data)", self.train.rows),
                                         ("generated samples (observe_samples)", self.samples)) if value is None]

    def copying(self, copy_quantile: float) -> Copying | None:
        if self.missing():
            return None
        key = (self._gathered, copy_quantile)
        if self._copying is None or self._copying[0] != key:
            self._copying = (key, self._compare(copy_quantile))
        return self._copying[1]

    def _compare(self, copy_quantile: float) -> Copying:
        generator = torch.Generator()
        generator.set_state(self.train.generator.get_state())
        train = np.unique(self.train.rows.numpy(), axis=0)
        generated = _subset(self.samples.reshape(len(self.samples), -1), generator)
        heldout = _subset(self.reference.reshape(len(self.reference), -1), generator)
        if not (generated.shape[1] == heldout.shape[1] == train.shape[1]):
            raise ValueError(f"memorization: generated samples, reference and training data differ in size per "
                             f"sample: {generated.shape[1]}, {heldout.shape[1]}, {train.shape[1]}")
        result = memorization(generated, train, heldout, copy_quantile=copy_quantile)
        return Copying(result, near_duplicates(result, generated, heldout, copy_quantile), generated, train,
                       len(heldout))


def _subset(values: torch.Tensor, generator: torch.Generator) -> np.ndarray:
    if len(values) > MAX_COMPARED:
        values = values[torch.randperm(len(values), generator=generator)[:MAX_COMPARED]]
    return values.numpy()

"""What the Monitor is handed, screened before any probe sees it: the values a run observes are evidence, never a
reason to stop the user's loop.

Every tensor that enters through `observe_data`, `observe_samples`, `observe_latents` or a watched network's forward
call passes `ObservedValues` first, under a name for where it came from ("data", "source", "samples", "latents",
"outputs of 'G' in training", ...). A batch that no probe can use is skipped and counted with the first reason and
step (`Skipped`): a 0-d tensor, no rows, complex numbers, or rows of another shape than the first batch from the same
place. A usable batch is counted row by row (`Tally`): rows holding NaN or infinite values are counted with the first
and last step they appeared at and left out, and the probes receive the finite rows only (nothing where none are).
A (B,) tensor is read as B values of one feature, and a bool one as 0/1. A step here is the last step the loop
reported when the tensor came in (as for `observe_samples`): data observed before `mon.step(30)` counts at 29. The
rules (`gendiag.rules.observed`) turn the counts into findings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

DATA = ("data", "source")  # what the loop feeds the model
SAMPLED = ("samples", "sampling outputs")  # samples, and the outputs of sampling calls ("sampling outputs of 'G'")
TRAINED = ("latents", "training outputs")  # the model's own values in training ("training outputs of 'G'")
BUCKETS = 200  # step buckets per place kept for the figure (`StepCounts`)


@dataclass
class Tally:
    """Rows seen at one place and those among them that held NaN or infinite values."""

    batches: int = 0
    rows: int = 0
    nonfinite_rows: int = 0
    nonfinite_batches: int = 0
    first_step: int | None = None  # the first step a non-finite row came in
    last_step: int | None = None
    all_nonfinite_batches: int = 0  # batches none of whose rows was finite
    last_batch: tuple[int, int, int] = (0, 0, 0)  # (step, rows, non-finite rows) of the latest batch

    @property
    def share(self) -> float:
        """Non-finite rows over all rows seen here."""
        return self.nonfinite_rows / self.rows if self.rows else 0.0

    @property
    def last_share(self) -> float:
        """Non-finite rows of the latest batch over its rows: how the values stand now."""
        _, rows, nonfinite = self.last_batch
        return nonfinite / rows if rows else 0.0


@dataclass
class StepCounts:
    """Rows and non-finite rows per bucket of `width` steps (bucket k holds steps k·width to (k + 1)·width - 1), at
    most BUCKETS of them: where one more is needed the width doubles and neighbouring buckets merge, so a run of any
    length keeps a bounded record. Made from the counts `ObservedValues.count` gets, nothing read from a tensor."""

    width: int = 1
    buckets: dict[int, list[int]] = field(default_factory=dict)  # bucket -> [rows, non-finite rows]

    def add(self, step: int, rows: int, nonfinite: int) -> None:
        kept = self.buckets.setdefault(step // self.width, [0, 0])
        kept[0] += rows
        kept[1] += nonfinite
        while len(self.buckets) > BUCKETS:
            self.width *= 2
            merged: dict[int, list[int]] = {}
            for bucket, (seen, bad) in self.buckets.items():
                into = merged.setdefault(bucket // 2, [0, 0])
                into[0] += seen
                into[1] += bad
            self.buckets = merged

    def series(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first step of each bucket, its rows, its non-finite rows), in step order."""
        order = sorted(self.buckets)
        return (np.array([bucket * self.width for bucket in order], dtype=np.int64),
                np.array([self.buckets[bucket][0] for bucket in order], dtype=np.int64),
                np.array([self.buckets[bucket][1] for bucket in order], dtype=np.int64))


@dataclass
class Skipped:
    """Batches from one place that no probe could use, with the first one's reason and step."""

    count: int
    first_step: int
    reason: str


class ObservedValues:
    """Screens each observed tensor (`screen`) and keeps the counts per place (`tallies`, `skipped`) and over the
    steps (`by_step`)."""

    def __init__(self) -> None:
        self.tallies: dict[str, Tally] = {}
        self.skipped: dict[str, Skipped] = {}
        self.by_step: dict[str, StepCounts] = {}
        self._row_shapes: dict[str, tuple[int, ...]] = {}

    def screen(self, batch: torch.Tensor, where: str, step: int) -> torch.Tensor | None:
        """The finite rows of `batch` (detached), or None where it is unusable or holds no finite row."""
        batch = self.usable(batch, where, step)
        if batch is None:
            return None
        keep = finite_rows(batch)
        bad = None if keep is None else int((~keep).sum())  # the one read back from the batch's device
        self.count(where, step, int(batch.shape[0]), bad)
        if not bad:
            return batch
        return batch[keep] if bad < batch.shape[0] else None

    def usable(self, batch: torch.Tensor, where: str, step: int) -> torch.Tensor | None:
        """`batch` detached, as (B, ...) of real numbers with the row shape of the first batch from `where`; None
        (and counted as skipped) where it cannot be."""
        batch = batch.detach()
        if batch.dim() == 0:
            return self.skip(where, step, "a 0-d tensor holds no batch of rows")
        if batch.shape[0] == 0:
            return self.skip(where, step, f"the batch has no rows (shape {tuple(batch.shape)})")
        if batch.dim() == 1:
            batch = batch[:, None]
        if batch.is_complex():
            return self.skip(where, step, f"complex values ({batch.dtype}); expected real numbers")
        if batch.dtype == torch.bool:
            batch = batch.to(torch.uint8)
        shape = tuple(batch.shape[1:])
        first = self._row_shapes.setdefault(where, shape)
        if shape != first:
            return self.skip(where, step, f"rows of shape {shape}, unlike the first batch's {first}")
        return batch

    def count(self, where: str, step: int, rows: int, nonfinite: int | None) -> None:
        """Add a batch of `rows` rows, `nonfinite` of them holding NaN or infinite values (None: none can)."""
        tally = self.tallies.setdefault(where, Tally())
        tally.batches += 1
        tally.rows += rows
        tally.last_batch = (step, rows, nonfinite or 0)
        self.by_step.setdefault(where, StepCounts()).add(step, rows, nonfinite or 0)
        if not nonfinite:
            return
        tally.nonfinite_rows += nonfinite
        tally.nonfinite_batches += 1
        tally.all_nonfinite_batches += int(nonfinite == rows)
        tally.first_step = step if tally.first_step is None else tally.first_step
        tally.last_step = step

    def skip(self, where: str, step: int, reason: str) -> None:
        """Count a batch from `where` that no probe can use; the first reason is kept. Returns None."""
        skipped = self.skipped.get(where)
        if skipped is None:
            self.skipped[where] = Skipped(1, step, reason)
        else:
            skipped.count += 1
        return None

    def state(self) -> dict[str, object]:
        """The counts, for probe_data.json."""
        return {"tallies": {where: vars(tally) for where, tally in self.tallies.items()},
                "skipped": {where: vars(skipped) for where, skipped in self.skipped.items()}}


def finite_rows(batch: torch.Tensor) -> torch.Tensor | None:
    """A (B,) mask of the rows whose every value is finite; None for an integer batch (always finite)."""
    if not batch.is_floating_point():
        return None
    return torch.isfinite(batch.reshape(batch.shape[0], -1)).all(dim=1)


def screen_call(observed: ObservedValues, model: str, mode: str, step: int, x: torch.Tensor | None,
                t: torch.Tensor | None, output: torch.Tensor | None,
                cond: torch.Tensor | None = None) -> tuple[torch.Tensor | None, ...]:
    """The recorded rows of one forward call: its outputs counted under "<mode> outputs of '<model>'", and the rows
    whose input or output holds NaN or infinite values left out of x, t, the output and the condition alike (where
    they have one row count)."""
    keep = None
    if isinstance(output, torch.Tensor) and output.dim() > 0 and output.shape[0] > 0:
        keep = finite_rows(output)
        where = f"{'sampling' if mode == 'sampling' else 'training'} outputs of {model!r}"
        observed.count(where, step, int(output.shape[0]), None if keep is None else int((~keep).sum()))
    if isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] > 0:
        inputs = finite_rows(x)
        if inputs is not None:
            keep = inputs if keep is None or keep.shape != inputs.shape else keep & inputs
    if keep is None or bool(keep.all()):
        return x, t, output, cond
    return tuple(value[keep] if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == len(keep)
                 else value for value in (x, t, output, cond))

"""What `Monitor.step` and `observe_data` gather between two flushes, still on the training device.

Turning a loss into a Python float, or asking whether a batch holds a NaN, makes the host wait for the device: on a
GPU that drains the queue of work the loop has launched, every step. So the step records keep their losses and
scalars as the tensors the loop passed, the batches' non-finite counts stay on their device, and every
`flush_every` steps `read` brings all of them to the host in one copy per device."""

from __future__ import annotations

import torch

from gendiag.probes.base import StepRecord
from gendiag.quantities.observed import finite_rows

FLUSH_EVERY = 50  # steps between two flushes by default: one host copy amortised over 50 steps


class PendingSteps:
    """Step records whose loss and scalars may still be tensors, and the non-finite row counts of the data batches
    and the recorded outputs."""

    def __init__(self) -> None:
        self.records: list[StepRecord] = []
        self.batches: list[tuple[str, int, int, torch.Tensor]] = []  # (where, step, rows, non-finite rows)

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: StepRecord) -> None:
        self.records.append(record)

    def add_rows(self, batch: torch.Tensor, where: str, step: int) -> None:
        """Count the (B, ...) batch's rows that hold a NaN or infinite value, on its device (read at the next flush)."""
        keep = finite_rows(batch)
        bad = torch.zeros((), device=batch.device) if keep is None else (~keep).sum()
        self.batches.append((where, step, int(batch.shape[0]), bad))

    def add_outputs(self, output: object, where: str, step: int) -> None:
        """`add_rows` for a recorded call's output, where it is a batch of rows."""
        if isinstance(output, torch.Tensor) and output.dim() > 0 and output.shape[0] > 0:
            self.add_rows(output.detach(), where, step)

    def read(self) -> tuple[list[StepRecord], list[tuple[str, int, int, int]]]:
        """The records with their loss and scalars as floats, and each counted batch as (where, step, rows,
        non-finite rows); one copy to the host per device. Empties the pending lists."""
        records, batches = self.records, self.batches
        self.records, self.batches = [], []
        slots: list[tuple[StepRecord, str | None]] = []  # (record, scalar key or None for the loss)
        values: list[torch.Tensor] = []
        for record in records:
            if isinstance(record.loss, torch.Tensor):
                slots.append((record, None))
                values.append(record.loss)
            for key, value in record.scalars.items():
                if isinstance(value, torch.Tensor):
                    slots.append((record, key))
                    values.append(value)
        for (record, key), number in zip(slots, _host_floats(values)):
            if key is None:
                record.loss = number
            else:
                record.scalars[key] = number
        counts = _host_floats([count for *_, count in batches])
        return records, [(where, step, rows, int(count)) for (where, step, rows, _), count in zip(batches, counts)]


def _host_floats(values: list[torch.Tensor]) -> list[float]:
    """One-element tensors as floats, in order: stacked per device and copied to the host once per device."""
    by_device: dict[torch.device, list[int]] = {}
    for index, value in enumerate(values):
        by_device.setdefault(value.device, []).append(index)
    floats = [0.0] * len(values)
    for indices in by_device.values():
        stacked = torch.stack([values[i].detach().reshape(()).to(torch.float64) for i in indices])
        for index, number in zip(indices, stacked.cpu().tolist()):
            floats[index] = number
    return floats

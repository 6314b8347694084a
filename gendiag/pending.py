"""What `Monitor.step` and `observe_data` gather between two flushes, still on the training device.

Turning a loss into a Python float, or asking whether a batch holds a NaN, makes the host wait for the device: on a
GPU that drains the queue of work the loop has launched, every step. So the step records keep their losses and
scalars as the tensors the loop passed, the batches' non-finite counts stay on their device, and every
`flush_every` steps `read` brings all of them to the host in one copy per device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gendiag.probes.base import StepRecord

FLUSH_EVERY = 50  # steps between two flushes by default: one host copy amortised over 50 steps


@dataclass
class BadBatch:
    """A batch given to `observe_data` that held NaN or infinite values."""

    role: str
    step: int  # the step the batch was given in (one after the last reported step)
    count: int


class PendingSteps:
    """Step records whose loss and scalars may still be tensors, and the non-finite counts of the data batches."""

    def __init__(self) -> None:
        self.records: list[StepRecord] = []
        self.batches: list[tuple[str, int, torch.Tensor]] = []  # (role, step, count of non-finite values)

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: StepRecord) -> None:
        self.records.append(record)

    def add_batch(self, batch: torch.Tensor, role: str, step: int) -> None:
        """Count the batch's non-finite values on its device (read at the next flush)."""
        if batch.is_floating_point():
            self.batches.append((role, step, (~torch.isfinite(batch)).sum()))

    def read(self) -> tuple[list[StepRecord], list[BadBatch]]:
        """The records with their loss and scalars as floats, and the batches that held non-finite values; one copy
        to the host per device. Empties the pending lists."""
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
        counts = _host_floats([count for _, _, count in batches])
        bad = [BadBatch(role, step, int(count)) for (role, step, _), count in zip(batches, counts) if count]
        return records, bad


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

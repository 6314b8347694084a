"""The history of per-tensor gradient norms: the norms of each reading are written into one row of a buffer on their
device (`NormHistory.keep`), at each flush of the Monitor copied to the CPU in one go (`NormHistory.flush`; the
buffer starts at FLUSH_STEPS rows and doubles on the device when a flush is further apart) into a history
of at most HISTORY rows (when full it keeps every other row and halves its rate). Holding hundreds of small norm
tensors alive between flushes slowed the training step itself by ~4% on a 2-D MLP, more than the norms cost.

A `Group` is a set of watched tensors read together: at one watched optimizer's step, or at `Monitor.step`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

HISTORY = 2048
FLUSH_STEPS = 64  # rows of the device buffer of norms waiting for the flush, at first
MISSING = -1.0  # the norm written for a tensor whose gradient is None at a reading
NOT_READ = -2.0  # a row's columns no reading wrote (another group's tensors); NaN stays a non-finite gradient


@dataclass(eq=False)
class Group:
    """Watched tensors whose gradients are read together: at one watched optimizer's step (`optimizer` set) or,
    for the tensors no watched optimizer holds, at `Monitor.step`."""

    columns: list[int]
    params: list[torch.Tensor]
    optimizer: torch.optim.Optimizer | None = None
    calls: int = 0  # optimizer steps (hooked) or due `Monitor.step` calls
    due_count: int = 0
    previous: list[torch.Tensor] = field(default_factory=list)  # copies of the weights, then of the gradients
    weights_armed_at: int | None = None  # the step (or optimizer step) whose weights `previous` holds
    grads_armed: bool = False  # `previous` holds the gradients of the armed reading (for the noise pair)
    kept: int = 0  # readings whose norms were kept
    flushed: int = 0  # of those, the readings already in the history (what the rules judge before the end)
    histogram_due: bool = False

    def __post_init__(self) -> None:
        first, last = self.columns[0], self.columns[-1]
        contiguous = self.columns == list(range(first, last + 1))
        self.view: slice | torch.Tensor = slice(first, last + 1) if contiguous else torch.tensor(self.columns)
        self.devices = {p.device for p in self.params}


def missing_norm(like: torch.Tensor) -> torch.Tensor:
    """The MISSING marker, in place of the norm of a tensor without a gradient at this reading."""
    return torch.full((), MISSING, device=like.device)


class NormHistory:
    """Per-tensor gradient norms over the readings, one row per `Monitor.step` that had readings, and per network
    how many kept readings had a gradient and how many (read at `Monitor.step`) saw none."""

    def __init__(self) -> None:
        self.keep_every = 1
        self.counts: dict[str, dict[str, int]] = {}
        self.restart(0)

    def restart(self, tensors: int) -> None:
        """Start the rows again for `tensors` tensors (the set of watched tensors changed); the counts and the
        keeping rate stay."""
        self.history = np.empty((HISTORY, tensors))
        self.steps: list[int] = []
        self.pending: torch.Tensor | None = None  # (FLUSH_STEPS, tensors) norms not yet copied to the CPU
        self.pending_steps: list[int] = []
        self.pending_at_step: list[bool] = []  # whether the row holds a reading taken at Monitor.step
        self.row_written = False
        self.row_at_step = False

    def add_network(self, name: str) -> None:
        self.counts.setdefault(name, {"with_gradient": 0, "unseen": 0})

    def norms(self) -> np.ndarray:
        """The kept rows (steps × tensors); NaN where a tensor was not measured."""
        return self.history[: len(self.steps)]

    def keep(self, group: Group, norms: list[torch.Tensor], groups: int, dtype: torch.dtype) -> None:
        """Write a group's norms into the open row of the pending buffer (on their device, of `dtype`); `groups` is
        how many groups there are (a row of several groups starts as NOT_READ)."""
        if self.pending is None:
            self.pending = torch.empty(FLUSH_STEPS, self.history.shape[1], dtype=dtype, device=norms[0].device)
        row = self.pending[len(self.pending_steps)]
        if not self.row_written:
            if groups > 1:
                row.fill_(NOT_READ)
            self.row_written = True
        if group.devices != {self.pending.device}:
            norms = [norm.to(self.pending.device) for norm in norms]
        if isinstance(group.view, slice):
            torch.stack(norms, out=row[group.view])
        else:
            if group.view.device != row.device:
                group.view = group.view.to(row.device)
            row.index_copy_(0, group.view, torch.stack(norms).to(row.dtype))
        group.kept += 1
        self.row_at_step = self.row_at_step or group.optimizer is None

    def close_row(self, step: int) -> None:
        """`Monitor.step` gives the readings taken since the last one their step; a full buffer doubles (on its
        device: the host does not wait)."""
        if not self.row_written:
            return
        self.pending_steps.append(step)
        self.pending_at_step.append(self.row_at_step)
        self.row_written = self.row_at_step = False
        if len(self.pending_steps) >= len(self.pending):
            self.pending = torch.cat([self.pending, torch.empty_like(self.pending)])

    def flush(self, networks: dict[str, list[int]], read_at_step: set[int]) -> list[tuple[int, np.ndarray]]:
        """Move the pending rows into the history (one copy to the CPU); returns the rows kept, (step, norms). A
        network whose gradients read at `Monitor.step` (its columns in `read_at_step`) are all missing or exactly
        zero was not seen: its norms are not kept."""
        if not self.pending_steps:
            return []
        rows = self.pending[: len(self.pending_steps)].to(dtype=torch.float64, device="cpu").numpy()
        steps, self.pending_steps, at_step, self.pending_at_step = self.pending_steps, [], self.pending_at_step, []
        for name, columns in networks.items():
            values = rows[:, columns]
            read = ~(values == NOT_READ).all(axis=1)
            present = read & ((values != MISSING) & (values != NOT_READ) & (values != 0)).any(axis=1)  # NaN counts
            self.counts[name]["with_gradient"] += int(present.sum())
            if columns[0] in read_at_step:
                unseen = read & ~present & np.array(at_step)
                self.counts[name]["unseen"] += int(unseen.sum())
                rows[np.ix_(unseen, columns)] = NOT_READ
        kept = ~(rows == NOT_READ).all(axis=1)
        rows[rows < 0] = np.nan  # missing gradients and other groups' tensors: not measured
        added = []
        for step, norms, keep in zip(steps, rows, kept):
            if not keep:
                continue
            if len(self.steps) == HISTORY:
                self.history[: HISTORY // 2] = self.history[::2]
                self.steps = self.steps[::2]
                self.keep_every *= 2
            self.history[len(self.steps)] = norms
            self.steps.append(step)
            added.append((step, norms))
        return added


def median_per_tensor(norms: np.ndarray) -> np.ndarray:
    """Median over steps of each tensor's gradient norm, ignoring steps without a gradient (NaN when none)."""
    import pandas as pd

    return pd.DataFrame(norms).median().to_numpy()


def last_per_tensor(norms: np.ndarray) -> np.ndarray:
    """Each tensor's last measured gradient norm (NaN when none)."""
    import pandas as pd

    return pd.DataFrame(norms).ffill().iloc[-1].to_numpy() if len(norms) else np.full(norms.shape[1], np.nan)

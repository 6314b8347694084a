"""What a watched network's own calls say about sampling, without the `sampler=` fact.

`SamplingTrace`: one `with mon.sampling():` block's calls of one network, in order, each with its time and the same
first rows of x and of the output (`ForwardCall.head`, `output_head`), so the sampler's state can be followed call by
call. `trace_motion` measures how far that state ever moves from the block's first call (0 for a sampler that never
moves its state), and whether each call's input is the block's first input plus the previous call's output times
one scalar that does not grow: the exact trace of a sampler that restarts every step from the same start
(`x = x0 + dt * v(x, t)`), where one that carries its state (`x = x + dt * v(x, t)`) adds up its steps, so the
scalar grows with the step number.

`TimeCoverage`: the times of the training calls (a uniform sample of them) against the times of the sampling calls,
in bins spanning the sampling calls' range: a bin the sampler visits and training never filled is a range of t the
network was never trained on."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.flow.reservoir import Reservoir

COVERAGE_BINS = 20
KEPT_TRAIN_TIMES = 4096
KEPT_SAMPLING_CALLS = 4096


class SamplingTrace:
    """One sampling block's calls of one network, measured as they come so that memory stays a few numbers a call
    (an image sampler of 1,000 steps keeps no 1,000 inputs): each call's time (the median of its rows, NaN without
    one), its input's distance from the first call's (`changes`), and, for a call at a new time after one whose output
    has x's shape, the restart fit of its input (`fits`, see `restart_fit`). Rows are the call's first rows of x
    and of the output (`ForwardCall.head`, `output_head`), flattened, in float64."""

    def __init__(self, model: str, session: int, step: int) -> None:
        self.model, self.session, self.step = model, session, step
        self.times: list[float] = []
        self.changes: list[float] = []
        self.fits: list[tuple[float, float]] = []
        self._first: torch.Tensor | None = None
        self._size = 1.0
        self._last_output: torch.Tensor | None = None

    def add(self, t: torch.Tensor | None, head: torch.Tensor, output: torch.Tensor | None) -> None:
        time = float("nan") if t is None or t.numel() == 0 else float(t.reshape(-1).median())
        head = head.reshape(head.shape[0], -1).double()
        if self._first is None:
            self._first = head
            self._size = float(head.pow(2).mean().sqrt()) or 1.0
        if head.shape == self._first.shape:
            self.changes.append(float((head - self._first).pow(2).mean().sqrt()) / self._size)
            last = self._last_output
            if self.times and time != self.times[-1] and last is not None and last.shape == head.shape:
                fit = restart_fit(head - self._first, last)
                if fit is not None:
                    self.fits.append(fit)
        self.times.append(time)
        self._last_output = None if output is None else output.reshape(output.shape[0], -1).double()


def restart_fit(moved: torch.Tensor, output: torch.Tensor) -> tuple[float, float] | None:
    """A call's input less the first call's (`moved`) fitted as c times the previous call's output: the relative
    residual of the fit and |c|; None where either is zero. A sampler restarting from the same start
    (`x = x0 + dt * v(x, t)`) fits exactly with c = dt at every call; one that adds its steps up has c growing about
    as the step number, where it fits at all."""
    dot = float(output.pow(2).sum())
    span = float(moved.pow(2).sum().sqrt())
    if dot == 0 or span == 0:
        return None
    scale = float((moved * output).sum()) / dot
    return float((moved - scale * output).pow(2).sum().sqrt()) / span, abs(scale)


def trace_motion(trace: SamplingTrace) -> dict[str, Any]:
    """The state's motion over one block: `largest_change` (the furthest any call's rows are from the first call's,
    relative to the first's RMS size), `changes` (each call's), `calls`, `distinct_times`, `restart_residual` (the
    largest residual of the restart fits) and `restart_growth` (|c| of the last fit over |c| of the first; about 1
    for a sampler restarting from its start), both None with fewer than two fits."""
    distinct = {round(t, 9) for t in trace.times if t == t}
    fits = trace.fits
    usable = len(fits) >= 2 and fits[0][1] > 0
    return {"model": trace.model, "session": trace.session, "step": trace.step, "calls": len(trace.times),
            "distinct_times": len(distinct), "largest_change": max(trace.changes, default=0.0),
            "changes": list(trace.changes),
            "restart_residual": max(r for r, _ in fits) if usable else None,
            "restart_growth": fits[-1][1] / fits[0][1] if usable else None}


class TimeCoverage:
    """The times a network is called with in training (a uniform sample, from its own seeded reservoir) and in
    sampling (each sampling call's rows weighted by one over their count, so every call counts once)."""

    def __init__(self) -> None:
        self.train = Reservoir(KEPT_TRAIN_TIMES, seed=43)
        self.sampling = Reservoir(KEPT_SAMPLING_CALLS, seed=47)

    def add(self, mode: str, t: torch.Tensor) -> None:
        times = t.reshape(-1, 1).double()
        if mode == "train":
            self.train.add(times.float())
        else:
            self.sampling.add(times.median().reshape(1, 1).float())


def coverage_table(coverage: TimeCoverage) -> dict[str, Any] | None:
    """Bins spanning the sampling calls' range of t: per bin the share of sampling calls in it and the training
    times in it; the share of sampling calls whose bin holds no training time (`untrained_share`), the two ranges,
    and the training times kept. None before there are training and sampling times."""
    train, sampling = coverage.train.rows.reshape(-1).double(), coverage.sampling.rows.reshape(-1).double()
    train, sampling = train[torch.isfinite(train)], sampling[torch.isfinite(sampling)]
    if len(train) == 0 or len(sampling) == 0:
        return None
    low, high = float(sampling.min()), float(sampling.max())
    edges = torch.linspace(low, high if high > low else low + 1.0, COVERAGE_BINS + 1, dtype=torch.float64)
    sampling_counts = torch.histogram(sampling.clamp(low, float(edges[-1])), bins=edges).hist
    inside = (train >= edges[0]) & (train <= edges[-1])
    train_counts = torch.histogram(train[inside], bins=edges).hist
    untrained = (sampling_counts > 0) & (train_counts == 0)
    return {"edges": edges.tolist(), "sampling_share": (sampling_counts / len(sampling)).tolist(),
            "train_counts": train_counts.long().tolist(), "untrained_bins": untrained.nonzero().reshape(-1).tolist(),
            "untrained_share": float(sampling_counts[untrained].sum() / len(sampling)),
            "train_range": [float(train.min()), float(train.max())], "sampling_range": [low, high],
            "train_times": len(train), "sampling_calls": coverage.sampling.seen}

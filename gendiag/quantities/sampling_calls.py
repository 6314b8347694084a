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

from dataclasses import dataclass, field
from typing import Any

import torch

from gendiag.flow.reservoir import Reservoir

COVERAGE_BINS = 20
KEPT_TRAIN_TIMES = 4096
KEPT_SAMPLING_CALLS = 4096


@dataclass
class SamplingTrace:
    """One sampling block's calls of one network: each call's time (the median of its rows, NaN without a time)
    and its first rows of x, flattened to (rows, D) float64."""

    model: str
    session: int
    step: int
    times: list[float] = field(default_factory=list)
    heads: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor | None] = field(default_factory=list)

    def add(self, t: torch.Tensor | None, head: torch.Tensor, output: torch.Tensor | None) -> None:
        self.times.append(float("nan") if t is None or t.numel() == 0 else float(t.reshape(-1).median()))
        self.heads.append(head.reshape(head.shape[0], -1).double())
        self.outputs.append(None if output is None else output.reshape(output.shape[0], -1).double())


def trace_motion(trace: SamplingTrace) -> dict[str, Any]:
    """The state's motion over one block: `largest_change` (the furthest any call's rows are from the first call's,
    relative to the first's RMS size), `changes` (each call's), `calls`, `distinct_times`, and from `restart_fit`
    `restart_residual` and `restart_growth` (None where no call follows another at a new time with an output of
    x's shape)."""
    first = trace.heads[0]
    size = float(first.pow(2).mean().sqrt()) or 1.0
    changes = [float((h - first).pow(2).mean().sqrt()) / size for h in trace.heads if h.shape == first.shape]
    distinct = {round(t, 9) for t in trace.times if t == t}
    residual, growth = restart_fit(trace)
    return {"model": trace.model, "session": trace.session, "step": trace.step, "calls": len(trace.times),
            "distinct_times": len(distinct), "largest_change": max(changes, default=0.0), "changes": changes,
            "restart_residual": residual, "restart_growth": growth}


def restart_fit(trace: SamplingTrace) -> tuple[float | None, float | None]:
    """For each call k after the first that comes at a new time, the input less the first call's input, fitted as
    c_k times the previous call's output: the largest relative residual of those fits, and |c| of the last fit over
    |c| of the first (about 1 for a sampler restarting from the same start; about the step number for one that adds
    its steps up). (None, None) with fewer than two such fits."""
    first = trace.heads[0]
    fits = []
    for k in range(1, len(trace.heads)):
        output, head = trace.outputs[k - 1], trace.heads[k]
        if trace.times[k] == trace.times[k - 1] or output is None or output.shape != first.shape                 or head.shape != first.shape:
            continue
        moved, dot = head - first, float(output.pow(2).sum())
        span = float(moved.pow(2).sum().sqrt())
        if dot == 0 or span == 0:
            continue
        scale = float((moved * output).sum()) / dot
        fits.append((float((moved - scale * output).pow(2).sum().sqrt()) / span, abs(scale)))
    if len(fits) < 2 or fits[0][1] == 0:
        return None, None
    return max(r for r, _ in fits), fits[-1][1] / fits[0][1]


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

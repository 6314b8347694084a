"""What a watched network's own calls say about sampling, without the `sampler=` fact.

`SamplingTrace`: one `with mon.sampling():` block's calls of one network, in order, each with its time and the same
first rows of x (`ForwardCall.head`), so the sampler's state can be followed call by call. `trace_motion` measures
how far that state ever moves from the block's first call, and how that compares with the largest move between two
successive calls at different times: a sampler that carries its state forward drifts away step by step (many moves),
one that never moves its state stays at 0, and one that restarts every step from the same start never gets
further than about one move from it.

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

    def add(self, t: torch.Tensor | None, head: torch.Tensor) -> None:
        self.times.append(float("nan") if t is None or t.numel() == 0 else float(t.reshape(-1).median()))
        self.heads.append(head.reshape(head.shape[0], -1).double())


def trace_motion(trace: SamplingTrace) -> dict[str, Any]:
    """The state's motion over one block, relative to the RMS size of the first call's rows: `largest_change` (the
    furthest any call's rows are from the first call's), `largest_move` (the largest change between two successive
    calls at different times, over calls with the first call's rows' shape), `carry` (largest_change over
    largest_move; NaN when nothing moves), `calls` and `distinct_times`."""
    first = trace.heads[0]
    size = float(first.pow(2).mean().sqrt()) or 1.0
    same = [(t, h) for t, h in zip(trace.times, trace.heads) if h.shape == first.shape]
    changes = [float((h - first).pow(2).mean().sqrt()) / size for _, h in same]
    moves = [float((h - h_prev).pow(2).mean().sqrt()) / size
             for (t_prev, h_prev), (t, h) in zip(same, same[1:]) if t != t_prev]
    largest_change, largest_move = max(changes, default=0.0), max(moves, default=0.0)
    distinct = {round(t, 9) for t in trace.times if t == t}
    return {"model": trace.model, "session": trace.session, "step": trace.step, "calls": len(trace.times),
            "distinct_times": len(distinct), "largest_change": largest_change, "largest_move": largest_move,
            "carry": largest_change / largest_move if largest_move > 0 else float("nan"),
            "changes": changes, "times": [t for t, _ in same]}


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

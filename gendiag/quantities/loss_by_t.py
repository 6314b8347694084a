"""The loss by time t: per-sample losses folded into bins of t (ten equal bins plus geometric bins toward each end)
in chunks over training (`TimeBinnedLoss`), and their summary over the second half of training
(`summarise_loss_by_t`): per-bin mean and spread, each bin's share of the expected loss and of the loss variance,
and a power-law fit of the loss (or the squared target size) toward either end of [0, 1] (`tail_fit`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

BINS = 10
TAIL_BINS = 16  # geometric bins toward each end: down to a distance of 2^-16 from it
STATS = 4  # rows of a chunk: count, sum of loss, sum of squared loss, sum of squared target size
CHUNK_STEPS = 64
MAX_CHUNKS = 64
TAIL_MIN_COUNT = 10  # samples a geometric bin needs to enter the tail fit
TAIL_MIN_BINS = 3  # bins the tail fit needs

Pending = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]


class TimeBinnedLoss:
    """Per-step (t, loss, target size) references, folded in batches into the open chunk's (STATS, BINS +
    2·TAIL_BINS) float64 buffer; a chunk closes every `chunk_length` steps; when more than MAX_CHUNKS are kept,
    neighbours merge pairwise and the chunk length doubles."""

    def __init__(self) -> None:
        self.scale: float | None = None
        self.chunks: list[torch.Tensor] = []
        self.chunk_steps: list[tuple[int, int]] = []
        self.chunk_length = CHUNK_STEPS
        self.current = torch.zeros(STATS, BINS + 2 * TAIL_BINS, dtype=torch.float64)
        self.current_first: int | None = None
        self.current_count = 0
        self.has_target = False
        self.pending: list[Pending] = []
        self.added = 0

    def add(self, step: int, t: torch.Tensor, loss: torch.Tensor, target: torch.Tensor | None) -> None:
        """Keep a reference to one step's tensors (no copy) until the next `flush`."""
        self.pending.append((t, loss, target))
        if self.current_first is None:
            self.current_first = step
        self.current_count += 1
        self.added += 1

    def flush(self, schedule: Any) -> None:
        """Fold the pending steps into the open chunk; the time scale is fixed by the first flush."""
        if not self.pending:
            return
        if self.scale is None:
            self.scale = time_scale(torch.cat([_flat(p[0]) for p in self.pending]), schedule)
        self.has_target = bin_steps(self.pending, self.scale, self.current) or self.has_target
        self.pending = []

    def close_chunk(self, step: int, schedule: Any) -> torch.Tensor:
        """Flush, keep the open chunk (ending at `step`), start a new one; returns the closed chunk's stats."""
        self.flush(schedule)
        stats = self.current
        self.chunks.append(stats)
        self.chunk_steps.append((self.current_first if self.current_first is not None else step, step))
        self.current = torch.zeros_like(self.current)
        self.current_first = None
        self.current_count = 0
        if len(self.chunks) > MAX_CHUNKS:
            self.chunks, self.chunk_steps = merge_pairs(self.chunks, self.chunk_steps)
            self.chunk_length *= 2
        return stats

    def snapshot(self, step: int, schedule: Any) -> tuple[list[torch.Tensor], list[tuple[int, int]], bool]:
        """(chunks, their step ranges, whether a target size was given) as `close_chunk(step)` would leave them,
        without changing anything kept."""
        chunks, chunk_steps, has_target = list(self.chunks), list(self.chunk_steps), self.has_target
        if self.current_count:
            current = self.current
            if self.pending:
                current = current.clone()
                scale = self.scale or time_scale(torch.cat([_flat(p[0]) for p in self.pending]), schedule)
                has_target = bin_steps(self.pending, scale, current) or has_target
            chunks.append(current)
            chunk_steps.append((self.current_first if self.current_first is not None else step, step))
            if len(chunks) > MAX_CHUNKS:
                chunks, chunk_steps = merge_pairs(chunks, chunk_steps)
        return chunks, chunk_steps, has_target


def merge_pairs(chunks: list[torch.Tensor], chunk_steps: list[tuple[int, int]]
                ) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """Neighbouring chunks summed pairwise (an odd last one kept as it is), with their step ranges."""
    merged = [a + b for a, b in zip(chunks[::2], chunks[1::2])] + ([chunks[-1]] if len(chunks) % 2 else [])
    steps = [(a[0], b[1]) for a, b in zip(chunk_steps[::2], chunk_steps[1::2])] + (
        [chunk_steps[-1]] if len(chunk_steps) % 2 else [])
    return merged, steps


def bin_steps(pending: list[Pending], scale: float, into: torch.Tensor) -> bool:
    """Add the counts, sums and sums of squares of the finite losses (and sums of squared target sizes) per bin of
    t / scale into `into`, a (STATS, BINS + 2·TAIL_BINS) float64 CPU tensor; returns whether any step gave a
    target size."""
    t = torch.cat([_flat(p[0]) for p in pending])
    loss = torch.cat([_flat(p[1]) for p in pending]).double()
    has_target = any(p[2] is not None for p in pending)
    if has_target:
        size = torch.cat([_flat(p[2]).double().square() if p[2] is not None
                          else torch.zeros(p[1].numel(), dtype=torch.float64, device=loss.device) for p in pending])
    else:
        size = torch.zeros_like(loss)
    u = (t.double() / scale).clamp_(0.0, 1.0)
    finite = torch.isfinite(loss) & torch.isfinite(size)
    if not bool(finite.all()):
        u, loss, size = u[finite], loss[finite], size[finite]
    linear = (u * BINS).long().clamp_(max=BINS - 1)
    near_one = (-torch.log2(1 - u).clamp_(min=-TAIL_BINS)).long().clamp_(max=TAIL_BINS - 1)
    near_zero = (-torch.log2(u).clamp_(min=-TAIL_BINS)).long().clamp_(max=TAIL_BINS - 1)
    index = torch.cat([linear, near_one + BINS, near_zero + BINS + TAIL_BINS])
    values = torch.stack([torch.ones_like(loss), loss, loss * loss, size]).repeat(1, 3)
    into.index_add_(1, index.cpu(), values.cpu())
    return has_target


def _flat(values: torch.Tensor) -> torch.Tensor:
    return values if values.dim() == 1 else values.reshape(-1)


def time_scale(t: torch.Tensor, schedule: Any) -> float:
    """What t is divided by to lie in [0, 1]: 1 for float times in [0, 1], else T - 1 for timesteps 0..T-1 (T from
    the schedule, else the power of ten above the largest timestep seen)."""
    top = float(t.max())
    if t.is_floating_point() and top <= 1.0:
        return 1.0
    if schedule is not None:
        return float(len(schedule) - 1)
    return float(10 ** math.ceil(math.log10(top + 1)) - 1) if top > 0 else 1.0


def variance_shares(count: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """Each bin's part of the total loss variance (within-bin variance plus its mean's distance to the overall
    mean, weighted by the bin's frequency)."""
    weight = count / count.sum().clamp(min=1)
    overall = (weight * mean).sum()
    parts = weight * (variance.clamp(min=0) + (mean - overall).square())
    return parts / parts.sum().clamp(min=1e-300)


def summarise_loss_by_t(chunks: list[torch.Tensor], chunk_steps: list[tuple[int, int]],
                        has_target: bool) -> dict[str, Any]:
    """Per-bin statistics over the second half of training (the chunks that start at or after the middle one),
    the shares of the expected loss and of its variance, and the tail fits toward t -> 1 and t -> 0."""
    import pandas as pd

    late_from = chunk_steps[len(chunk_steps) // 2][0]
    late = torch.stack([c for c, (first, _) in zip(chunks, chunk_steps) if first >= late_from]).sum(0).numpy()
    count, total, squares, size = late
    mean = total / np.maximum(count, 1)
    variance = np.maximum(squares / np.maximum(count, 1) - mean ** 2, 0)
    linear = slice(0, BINS)
    populated = count[linear] > 0
    # shares of the expected loss under uniform t: the t range's part of the integral of E[loss | t]
    loss_share = np.where(populated, mean[linear], 0) / max(float(np.where(populated, mean[linear], 0).sum()), 1e-300)
    variance_share = variance_shares(torch.from_numpy(count[linear]), torch.from_numpy(mean[linear]),
                                     torch.from_numpy(variance[linear])).numpy()
    worst_loss, worst_var = int(np.argmax(loss_share)), int(np.argmax(variance_share))
    median_loss = float(np.median(mean[linear][populated])) if populated.any() else float("nan")
    measured = (size if has_target else total) / np.maximum(count, 1)
    median_measured = float(np.median(measured[linear][populated])) if populated.any() else float("nan")
    tails = [tail_fit(count, measured, BINS + offset, end, median_measured, has_target)
             for offset, end in ((0, "t -> 1"), (TAIL_BINS, "t -> 0"))]
    labels = [f"{b / BINS:.1f}–{(b + 1) / BINS:.1f}" for b in range(BINS)]
    table = pd.DataFrame({"samples": count[linear].astype(int), "mean loss": mean[linear],
                          "loss std": np.sqrt(variance[linear]), "share of loss": loss_share,
                          "share of variance": variance_share}, index=pd.Index(labels, name="t"))
    return {
        "late_steps": [int(late_from), int(chunk_steps[-1][1])], "samples": int(count[linear].sum()),
        "bin_mean": mean[linear].tolist(), "bin_std": np.sqrt(variance[linear]).tolist(),
        "loss_share": loss_share.tolist(), "variance_share": variance_share.tolist(),
        "worst_loss_bin": labels[worst_loss], "worst_loss_share": float(loss_share[worst_loss]),
        "worst_variance_bin": labels[worst_var], "worst_variance_share": float(variance_share[worst_var]),
        "median_bin_loss": median_loss, "tails": tails, "table": table,
    }


def tail_fit(count: np.ndarray, measured_all: np.ndarray, start: int, end: str, median: float,
             has_target: bool) -> dict[str, Any]:
    """Fit log(mean) = a + b log(distance to the end) over the geometric bins at distance <= 1/2 (bins from
    `start`), for the loss (or the squared target size); `median` is that quantity's median over the equal bins
    of t. `slope` is None when fewer than TAIL_MIN_BINS bins hold TAIL_MIN_COUNT samples and a positive mean."""
    k = np.arange(1, TAIL_BINS)
    n = count[start + k]
    measured = measured_all[start + k]
    keep = (n >= TAIL_MIN_COUNT) & (measured > 0)
    distance = 2.0 ** -(k + 0.5)
    result: dict[str, Any] = {"end": end, "quantity": "squared target size" if has_target else "loss",
                              "slope": None}
    if keep.sum() < TAIL_MIN_BINS:
        return result
    x, y = np.log(distance[keep]), np.log(measured[keep])
    slope, intercept = np.polyfit(x, y, 1)
    outer = int(np.flatnonzero(keep)[-1])
    outer_value = float(measured[outer])
    ratio = outer_value / median if median > 0 else float("inf")
    result.update(
        slope=float(slope), intercept=float(intercept), distances=distance[keep].tolist(),
        values=measured[keep].tolist(), counts=n[keep].astype(int).tolist(),
        outer_distance=float(2.0 ** -(k[outer] + 1)), outer_value=outer_value, outer_ratio=float(ratio), median=median,
    )
    return result

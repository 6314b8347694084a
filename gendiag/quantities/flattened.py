"""Measurements the flattened-image case's story needs that no probe makes: how alike two flattened pictures are,
how far the sampler carried its state, how much of a needed move a network's last layer cannot express, when the
generated picture came closest to the target, and the whole-run numbers the case reports as results.

Pure functions of tensors and lists: no Monitor, no Finding, no figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of flattened images, row by row (b broadcasts)."""
    return torch.nn.functional.cosine_similarity(a, b.expand_as(a), dim=1, eps=1e-12)


def binary_iou(a: torch.Tensor, b: torch.Tensor, threshold: float) -> torch.Tensor:
    """Intersection over union of the pixels above `threshold`, row by row (1 when both are empty)."""
    on_a, on_b = a > threshold, (b > threshold).expand_as(a)
    union = (on_a | on_b).sum(1).float()
    return torch.where(union > 0, (on_a & on_b).sum(1).float() / union.clamp_min(1), 1.0)


def displacement_ratio(samples: torch.Tensor, starts: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over rows of ‖sample − start‖ / ‖target − start‖: 0 when the sampler returns its start, 1 when it
    travels as far as the straight path to the target (`target` broadcasts)."""
    gap = (target - starts).norm(dim=1).clamp_min(1e-12)
    return float(((samples - starts).norm(dim=1) / gap).mean())


def relative_weight_change(now: Sequence[torch.Tensor], initial: Sequence[torch.Tensor]) -> float:
    """‖θ − θ0‖ / ‖θ0‖ over all tensors together: how far training moved the weights, relative to their size."""
    moved = sum(float((p.detach() - p0).pow(2).sum()) for p, p0 in zip(now, initial))
    size = sum(float(p0.pow(2).sum()) for p0 in initial)
    return (moved / size) ** 0.5 if size > 0 else float("nan")


def loss_share_from(t: torch.Tensor, per_sample_loss: torch.Tensor, t_min: float) -> float:
    """Share of the summed per-sample loss carried by the draws with t ≥ `t_min` (NaN for an empty or zero loss)."""
    total = float(per_sample_loss.sum())
    return float(per_sample_loss[t >= t_min].sum()) / total if total > 0 else float("nan")


def unreachable_share(weight: torch.Tensor, bias: torch.Tensor, needed: torch.Tensor) -> float:
    """Share of the needed displacements' energy outside the span of a last linear layer's weight columns and
    bias (`weight` is (out, in), as `torch.nn.Linear` keeps it): whatever the hidden units do, the network's
    output cannot point there. `needed` is (B, out)."""
    basis, _ = torch.linalg.qr(torch.cat([weight.detach(), bias.detach()[:, None]], dim=1))
    outside = needed - (needed @ basis) @ basis.T
    return float(outside.pow(2).sum() / needed.pow(2).sum().clamp_min(1e-12))


@dataclass(frozen=True)
class LossRange:
    """The batch losses of a run: first, last, median, smallest and largest (NaN for a run with none)."""

    first: float
    last: float
    median: float
    min: float
    max: float


def loss_range(losses: Sequence[float]) -> LossRange:
    values = np.asarray(losses, dtype=float) if len(losses) else np.asarray([np.nan])
    return LossRange(float(values[0]), float(values[-1]), float(np.median(values)), float(values.min()),
                     float(values.max()))


@dataclass(frozen=True)
class Peak:
    """The checkpoint whose picture came closest to the target, and the last checkpoint, by cosine."""

    iteration: int
    peak_cos_target: float
    peak_cos_source: float
    last_cos_target: float
    last_cos_source: float


def peak(iterations: Sequence[int], cos_target: Sequence[float], cos_source: Sequence[float]) -> Peak:
    """The best checkpoint by cosine to the target (the first of equals) against the last one."""
    if not iterations or not len(iterations) == len(cos_target) == len(cos_source):
        raise ValueError(f"peak: needs one or more checkpoints with one value each, got {len(iterations)} "
                         f"iterations, {len(cos_target)} and {len(cos_source)} values")
    best = int(np.argmax(cos_target))
    return Peak(int(iterations[best]), float(cos_target[best]), float(cos_source[best]), float(cos_target[-1]),
                float(cos_source[-1]))

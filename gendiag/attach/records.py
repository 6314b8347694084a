"""What `gendiag attach`'s session keeps between hook events: rounds, regressions, sampling runs, a thinning
rule, and small readers of tensors and graphs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from gendiag.attach.infer import NetworkSeen


class Thinning:
    """Takes the first `first` offers, then every stride-th, the stride doubling after each `first` takes: a
    handful of batches spread over any length of run."""

    def __init__(self, first: int = 8) -> None:
        self.first, self.offers, self.taken, self.stride = first, 0, 0, 1

    def take(self) -> bool:
        self.offers += 1
        if self.offers % self.stride:
            return False
        self.taken += 1
        if self.taken % self.first == 0:
            self.stride *= 2
        return True


@dataclass
class Fitted:
    """One regression of a round: the network, its per-sample losses, times and target sizes, and the two end
    points x + (1 - t) * target and x - t * target where kept."""

    network: str
    t: torch.Tensor | None
    per_sample: torch.Tensor
    target_norm: torch.Tensor
    ends: dict[float, torch.Tensor] | None


@dataclass
class Round:
    """What a round saw (or, as `pending`, what came since the last optimizer step: it joins the round of that
    step)."""

    losses: list[tuple[float, int | None]] = field(default_factory=list)  # (value, index of the optimizer it fed)
    fitted: list[Fitted] = field(default_factory=list)
    d_real: list[torch.Tensor] = field(default_factory=list)
    d_fake: list[torch.Tensor] = field(default_factory=list)

    def take(self, pending: "Round", optimizer: int | None) -> None:
        self.losses += [(value, optimizer) for value, _ in pending.losses]
        self.fitted += pending.fitted
        self.d_real += pending.d_real
        self.d_fake += pending.d_fake


@dataclass
class SamplingRun:
    """Consecutive sampling calls of one network, from its first call (its start) to its last."""

    network: NetworkSeen
    first_t: float | None
    calls: int = 0
    last: tuple[Any, torch.Tensor | None, torch.Tensor | None] | None = None  # x, t, output of the last call


def output_tensors(output: Any) -> list[torch.Tensor]:
    """The tensors a forward call returned: the output itself, or those in its tuple or list."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [o for o in output if isinstance(o, torch.Tensor)]
    return []


def pointer(value: torch.Tensor) -> tuple[int, tuple[int, ...]] | None:
    """Where a tensor's data starts, and its shape: equal for a tensor and its `.detach()`."""
    try:
        return value.untyped_storage().data_ptr() + value.storage_offset() * value.element_size(), tuple(value.shape)
    except RuntimeError:  # a tensor without storage
        return None


def mentions(loss: torch.Tensor, names: tuple[str, ...], limit: int = 64) -> bool:
    """Whether any of the loss's first graph nodes is one of `names`."""
    seen, stack = set(), [loss.grad_fn]
    while stack and len(seen) < limit:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if type(node).__name__ in names:
            return True
        stack.extend(child for child, _ in node.next_functions)
    return False


def first_batch(batch: Any) -> torch.Tensor | None:
    """The samples of a DataLoader batch: the batch itself, or its first floating tensor of >= 2 dimensions (the
    images of (images, labels))."""
    if isinstance(batch, torch.Tensor):
        return batch if batch.dim() >= 2 and batch.is_floating_point() else None
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else ()
    return next((v for v in values if isinstance(v, torch.Tensor) and v.dim() >= 2 and v.is_floating_point()), None)

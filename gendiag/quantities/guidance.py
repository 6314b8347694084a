"""Classifier-free guidance, told or seen: the `guidance=` fact, or the sampler's own calls of a watched network.

A guided sampler calls the network twice on one state at one time, once with the condition asked for and once with
the null condition, and extrapolates between the two outputs. Seen in the recorded sampling calls: two calls in a row
of one sampling block at the same t on the same first rows of x (`ForwardCall.head`) are a guided pair (one call on
`cat([x, x])`, `ForwardCall.doubled`, is the batched form of the same), and the
condition one of the two holds on every row, in (nearly) every pair, is the null one. A call that passes no condition
while the watch reads one, or an all-zero one-hot row, is a null condition too. The `null_cond=` fact names it
outright.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Hashable, Mapping

import torch

from gendiag.quantities.conditioning import NONE, ZEROS, label_keys

if TYPE_CHECKING:
    from gendiag.probes.base import ForwardCall

MIN_PAIRS = 3  # guided pairs before guidance counts as seen
NULL_SHARE = 0.9  # share of the pairs in which one call holds the null condition on every row


@dataclass
class GuidanceWatch:
    """Follows the sampling calls of the watched networks for guided pairs and null conditions."""

    pairs: int = 0
    doubled: int = 0  # sampling calls on one batch twice over, cat([x, x]) (the two halves of a guided pair)
    votes: Counter = field(default_factory=Counter)
    sampling_keys: Counter = field(default_factory=Counter)
    _last: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor, list[Hashable] | None]] = field(
        default_factory=dict)

    def add(self, call: "ForwardCall") -> None:
        """A recorded forward call (training calls are ignored)."""
        if call.mode != "sampling" or call.head is None or call.t is None or call.t.numel() == 0:
            return
        keys = label_keys(call.cond, len(call.x)) if call.conditioned and call.x is not None else None
        if keys is not None:
            self.sampling_keys.update(keys)
        self.doubled += call.doubled
        times = torch.stack([call.t.min(), call.t.max()])
        where = (call.model, call.session)
        last = self._last.get(where)
        self._last[where] = (times, call.head, keys)
        if last is None or not torch.equal(last[0], times) or last[1].shape != call.head.shape:
            return
        if not torch.allclose(last[1], call.head, rtol=1e-5, atol=1e-6):
            return
        self.pairs += 1
        self._last.pop(where)  # a third call on the same state starts a new pair
        for side in (last[2], keys):
            if side is not None and len(set(side)) == 1:
                self.votes[side[0]] += 1

    def null(self, facts: Mapping[str, Any], data_labels: set[int] | None = None) -> tuple[Hashable, str] | None:
        """The null condition and how it is known, or None: the `null_cond` fact; a call without a condition or an
        all-zero one-hot row in sampling; the condition constant on one call of (nearly) every guided pair; or the one
        sampling condition that is no class of the data (`data_labels`)."""
        if facts.get("null_cond") is not None:
            return int(facts["null_cond"]), "the null_cond fact"
        for key in (NONE, ZEROS):
            if self.sampling_keys[key]:
                return key, ("sampling calls that pass no condition" if key == NONE else
                             "sampling calls with all-zero one-hot conditions")
        if self.pairs >= MIN_PAIRS:
            constant = [key for key, votes in self.votes.items() if votes >= NULL_SHARE * self.pairs]
            if data_labels:
                constant = [key for key in constant if key not in data_labels] or constant
            if len(constant) == 1:
                return constant[0], f"the condition held on every row of one call in {self.pairs} guided pairs"
        if data_labels:
            outside = [key for key in self.sampling_keys if key not in data_labels]
            if len(outside) == 1:
                return outside[0], "the one condition of the sampling calls that is no class of the data"
        return None

    def guided(self, facts: Mapping[str, Any]) -> str | None:
        """How guided sampling is known (one phrase), or None where it is not."""
        if facts.get("guidance") is not None:
            return f"the guidance fact (scale {facts['guidance']:g})"
        if self.pairs >= MIN_PAIRS:
            return f"{self.pairs} pairs of sampling calls on the same state at the same t"
        if self.doubled >= MIN_PAIRS:
            return f"{self.doubled} sampling calls on one batch twice over (cat([x, x]))"
        found = self.null(facts)
        if found is not None and self.sampling_keys[found[0]]:
            return f"null-condition calls in sampling ({found[1]})"
        return None

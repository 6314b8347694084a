"""The regression inside a loss, read from its autograd graph before `backward` frees it.

The common regression losses leave what gendiag needs saved in the graph: `F.mse_loss(pred, target)` saves both
in its `MseLossBackward0` node, and a hand-written `((pred - target) ** 2).mean()` saves the residual pred - target
in its `PowBackward0` node, whose input is the `SubBackward0` of pred and target. When pred is (a view of) the
output of a network call that the hooks saw, the residual is known per sample, and so is the target (output minus
residual). Anything else is described by the names of the graph's first nodes, for the report."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

MAX_NODES = 256
"""Nodes looked at per loss, breadth first from the loss: the regression sits near the top of any loss."""
VIEWS = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "SqueezeBackward0",
                   "SqueezeBackward1", "SqueezeBackward2", "UnsqueezeBackward0", "ExpandBackward0", "CloneBackward0",
                   "ToCopyBackward0", "AliasBackward0"})


@dataclass
class Regression:
    """A regression found in a loss: which node, the residual prediction - target (detached, shaped like the
    network's output), the key of the network call whose output is the prediction, and that output."""

    node: str
    residual: torch.Tensor
    call: Any
    output: torch.Tensor


def _through_views(node: Any) -> Any:
    """The node a prediction comes from, past reshapes, squeezes and copies (at most a few)."""
    for _ in range(8):
        if node is None or type(node).__name__ not in VIEWS:
            return node
        node = node.next_functions[0][0] if node.next_functions else None
    return node


def _shaped(residual: torch.Tensor, output: torch.Tensor) -> torch.Tensor | None:
    if residual.shape == output.shape:
        return residual
    return residual.reshape(output.shape) if residual.numel() == output.numel() else None


def find_regression(loss: torch.Tensor, outputs: dict[Any, tuple[Any, torch.Tensor]]) -> Regression | None:
    """The first squared-error regression in `loss`'s graph whose prediction is a known network output.

    `outputs` maps an output tensor's grad_fn node to (a key for its call, the output tensor)."""
    seen: set[int] = set()
    queue = deque([loss.grad_fn])
    while queue and len(seen) < MAX_NODES:
        node = queue.popleft()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        found = _regression_at(node, outputs)
        if found is not None:
            return found
        queue.extend(child for child, _ in node.next_functions)
    return None


def _regression_at(node: Any, outputs: dict[Any, tuple[Any, torch.Tensor]]) -> Regression | None:
    name = type(node).__name__
    if name == "MseLossBackward0":
        pred, target = node._saved_self, node._saved_target
        sources = [_through_views(child) for child, _ in node.next_functions]
        if pred.shape != target.shape:
            return None
        for source, residual in zip(sources, ((pred - target), (target - pred))):
            if source in outputs:
                call, output = outputs[source]
                shaped = _shaped(residual.detach(), output)
                return None if shaped is None else Regression(name, shaped, call, output)
        return None
    if name == "PowBackward0" and node._saved_exponent == 2 and node.next_functions:
        difference = node.next_functions[0][0]
        if type(difference).__name__ != "SubBackward0":
            return None
        if getattr(difference, "_saved_alpha", 1) != 1:
            return None
        residual = node._saved_self.detach()
        for sign, (child, _) in zip((1.0, -1.0), difference.next_functions):
            source = _through_views(child)
            if source in outputs:
                call, output = outputs[source]
                shaped = _shaped(sign * residual, output)
                return None if shaped is None else Regression(name, shaped, call, output)
    return None


def describe(loss: torch.Tensor, nodes: int = 4) -> str:
    """The loss's first graph nodes, top down along first inputs (`MeanBackward0 <- AbsBackward0 <- ...`)."""
    names = []
    node = loss.grad_fn
    while node is not None and len(names) < nodes:
        names.append(type(node).__name__)
        node = node.next_functions[0][0] if node.next_functions else None
    return " <- ".join(names) if names else "no graph"

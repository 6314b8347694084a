"""The global hooks `gendiag attach` installs: every top-level call of a module with parameters, every optimizer
step, every backward pass and every DataLoader batch, reported to one listener. `installed` undoes them all.

Only calls made from outside any module count (a network's own layers are part of it): a global forward pre-hook
and forward hook keep the nesting depth of module calls and report the calls that return to depth 0. Global
forward hooks run before a module's own, so a listener can set what the module's own hooks will see."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Protocol

import torch
import torch.optim.optimizer as optimizer_module
import torch.utils.data.dataloader as dataloader_module
from torch.nn.modules import module as module_module


class Listener(Protocol):
    """What the hooks report to."""

    def after_call(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None: ...

    def before_step(self, optimizer: torch.optim.Optimizer) -> None: ...

    def after_step(self, optimizer: torch.optim.Optimizer) -> None: ...

    def before_backward(self, tensors: Any) -> None: ...

    def on_batch(self, batch: Any) -> None: ...


class _Depth:
    """Nesting depth of module calls, and which modules have parameters (asked once per module)."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.depth = 0
        self.has_parameters: dict[int, bool] = {}

    def pre(self, module: torch.nn.Module, args: tuple) -> None:
        self.depth += 1

    def post(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self.depth = max(self.depth - 1, 0)
        if self.depth:
            return
        known = self.has_parameters.get(id(module))
        if known is None:
            known = self.has_parameters[id(module)] = next(module.parameters(), None) is not None
        if known:
            self.listener.after_call(module, args, kwargs, output)


@contextlib.contextmanager
def installed(listener: Listener) -> Iterator[None]:
    """Install every global hook for the duration of the block; all are removed when it ends, however it ends.
    `torch.autograd.backward` is wrapped (`Tensor.backward` calls it) and so is DataLoader iterators' `__next__`."""
    depth = _Depth(listener)
    original_backward = torch.autograd.backward
    original_next = dataloader_module._BaseDataLoaderIter.__next__

    def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
        listener.before_backward(tensors)
        return original_backward(tensors, *args, **kwargs)

    def next_batch(self: Any) -> Any:
        batch = original_next(self)
        listener.on_batch(batch)
        return batch

    handles = []
    try:
        handles.append(module_module.register_module_forward_pre_hook(depth.pre))
        handles.append(module_module.register_module_forward_hook(depth.post, with_kwargs=True, always_call=True))
        handles.append(optimizer_module.register_optimizer_step_pre_hook(
            lambda optimizer, args, kwargs: listener.before_step(optimizer)))
        handles.append(optimizer_module.register_optimizer_step_post_hook(
            lambda optimizer, args, kwargs: listener.after_step(optimizer)))
        torch.autograd.backward = backward
        dataloader_module._BaseDataLoaderIter.__next__ = next_batch
        yield
    finally:
        torch.autograd.backward = original_backward
        dataloader_module._BaseDataLoaderIter.__next__ = original_next
        for handle in handles:
            handle.remove()

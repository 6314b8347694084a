"""The global hooks `gendiag attach` installs: every top-level call of a module with parameters, every optimizer
step, every backward pass and every DataLoader batch, reported to one listener. `installed` undoes them all.

Only calls made from outside any module count (a network's own layers are part of it): a global forward pre-hook
and forward hook keep the nesting depth of module calls and report the calls that return to depth 0. Global
forward hooks run before a module's own, so a listener can set what the module's own hooks will see.

Global module hooks make every module call take torch's slow path (hook lists gathered, each hook called), a few
microseconds per layer. Over the stretches the listener leaves unrecorded (most steps of a long run) the hooks are
`narrow`: the global module hooks are removed, and `Module.__call__`, wrapped for as long as the hooks are
installed, counts the nesting depth itself and only asks the listener, before each top-level call, whether it
`wakes` the hooks; a call it wakes them for (a sampling or evaluation call) and every call after it go through the
global hooks again (`widen`)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Protocol

import torch
import torch.optim.optimizer as optimizer_module
import torch.utils.data.dataloader as dataloader_module
from torch.nn.modules import module as module_module


class Listener(Protocol):
    """What the hooks report to. `hooks` is set to the installed `GlobalHooks` for as long as they are."""

    hooks: "GlobalHooks | None"
    quiet: bool  # between recorded rounds: the module hooks are installed narrow

    def after_call(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None: ...

    def wakes(self, module: torch.nn.Module) -> bool: ...

    def before_step(self, optimizer: torch.optim.Optimizer) -> None: ...

    def after_step(self, optimizer: torch.optim.Optimizer) -> None: ...

    def before_backward(self, tensors: Any) -> None: ...

    def on_batch(self, batch: Any) -> None: ...


class GlobalHooks:
    """The module hooks, wide (global forward hooks) or narrow (only the depth-counting `Module.__call__`, which
    stays in place while installed and passes calls straight on when wide), and the nesting depth both keep."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.depth = 0
        self.has_parameters: dict[int, bool] = {}
        self.narrowed = False
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        self.original_call = torch.nn.Module.__call__
        hooks, original = self, self.original_call

        def counted_call(module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
            if not hooks.narrowed:
                return original(module, *args, **kwargs)
            if not hooks.depth and hooks._has_parameters(module) and hooks.listener.wakes(module):
                hooks.widen()
                return original(module, *args, **kwargs)
            hooks.depth += 1
            try:
                return original(module, *args, **kwargs)
            finally:
                hooks.depth -= 1

        torch.nn.Module.__call__ = counted_call  # set once: assigning it re-types every Module subclass

    def widen(self) -> None:
        """Every module call through the global forward hooks (the calls that reach depth 0 reported in full)."""
        self.narrowed = False
        if not self.handles:
            self.handles = [module_module.register_module_forward_pre_hook(self._pre),
                            module_module.register_module_forward_hook(self._post, with_kwargs=True,
                                                                       always_call=True)]

    def narrow(self) -> None:
        """Module calls on torch's fast path; only top-level calls of modules with parameters are shown to
        `listener.wakes`, before they run. Inside a module call (an optimizer step in a forward) they stay wide: the
        calls already under way must return through the global hooks that counted them in."""
        if self.narrowed or self.depth:
            return
        self._remove_handles()
        self.narrowed = True

    def remove(self) -> None:
        """Undo the module hooks."""
        self._remove_handles()
        self.narrowed = False
        torch.nn.Module.__call__ = self.original_call

    def _remove_handles(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _has_parameters(self, module: torch.nn.Module) -> bool:
        known = self.has_parameters.get(id(module))
        if known is None:
            known = self.has_parameters[id(module)] = next(module.parameters(), None) is not None
        return known

    def _pre(self, module: torch.nn.Module, args: tuple) -> None:
        self.depth += 1

    def _post(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self.depth = max(self.depth - 1, 0)
        if not self.depth and self._has_parameters(module):
            self.listener.after_call(module, args, kwargs, output)


@contextlib.contextmanager
def installed(listener: Listener) -> Iterator[GlobalHooks]:
    """Install every global hook for the duration of the block (the module hooks narrow where the listener is
    `quiet`); all are removed when it ends, however it ends. `torch.autograd.backward` is wrapped (`Tensor.backward`
    calls it) and so is DataLoader iterators' `__next__`."""
    hooks = GlobalHooks(listener)
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
        if listener.quiet:
            hooks.narrow()
        else:
            hooks.widen()
        handles.append(optimizer_module.register_optimizer_step_pre_hook(
            lambda optimizer, args, kwargs: listener.before_step(optimizer)))
        handles.append(optimizer_module.register_optimizer_step_post_hook(
            lambda optimizer, args, kwargs: listener.after_step(optimizer)))
        torch.autograd.backward = backward
        dataloader_module._BaseDataLoaderIter.__next__ = next_batch
        listener.hooks = hooks
        yield hooks
    finally:
        listener.hooks = None
        torch.autograd.backward = original_backward
        dataloader_module._BaseDataLoaderIter.__next__ = original_next
        hooks.remove()
        for handle in handles:
            handle.remove()

"""Whether a network's gradients were reset between two steps (`ResetWatch`): the exact trace of a missing
`zero_grad` (or one called on another optimizer), under which each step's gradient adds to the last one's.

A window opens right after an optimizer step (for tensors read at `Monitor.step`: at a `Monitor.step`, for
STEP_WINDOW steps, so that gradient accumulation over a few micro-batches still falls inside one) and closes at the
next step. While it is open, a hook on each tensor of the group fires on every backward pass *before* the new
gradient is added to `.grad`: a `.grad` that is None or exactly zero there was reset (set to None, or zeroed in
place) since the step. A window in which some tensor of a network received a gradient but none of its tensors
ever saw a reset is a window of accumulation. One window every CHECK_EVERY optimizer steps (every STEP_EVERY
Monitor.step calls) keeps the cost to a Python call per tensor per backward during a tenth (a half) of the run, and
one reduction per tensor only while no reset has been seen. The reductions stay on the device; `settle` (at the
Monitor's flush) reads them in one copy and gives the closed windows their verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

CHECK_EVERY = 10  # open a window every this many optimizer steps of a group
STEP_WINDOW = 8  # Monitor.step calls a window spans for tensors read at Monitor.step
STEP_EVERY = 2 * STEP_WINDOW  # ... and how often one opens


@dataclass(eq=False)
class Window:
    """One open window over some watched tensors: which received a gradient and which saw a reset."""

    handles: list[torch.utils.hooks.RemovableHandle] = field(default_factory=list)
    received: set[int] = field(default_factory=set)
    reset: set[int] = field(default_factory=set)
    steps_left: int = 0
    held: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (column, .grad held a nonzero) per backward


class ResetWatch:
    """Windows of reset checks per group of tensors; `verdicts[network]` lists (step, reset seen) per closed
    window in which the network received a gradient."""

    def __init__(self, networks: dict[str, list[int]]) -> None:
        self.networks = networks
        self.open: dict[int, Window] = {}  # by id of the group's key (its optimizer, or None for Monitor.step)
        self.closed: list[Window] = []  # closed, waiting for their step
        self.unjudged: list[tuple[int, Window]] = []  # closed with their step, waiting for `settle`
        self.verdicts: dict[str, list[tuple[int, bool]]] = {}

    def opens(self, count: int, every: int = CHECK_EVERY) -> bool:
        """Whether the group's `count`-th step opens a window (one every `every` steps, from the first)."""
        return count % every == 1 % every

    def start(self, key: int, columns: list[int], params: list[torch.Tensor], steps: int = 1) -> None:
        """Open a window over `params` (watched tensors `columns`) that closes after `steps` closing calls."""
        if key in self.open:
            return
        window = Window(steps_left=steps)
        for column, param in zip(columns, params):
            window.handles.append(param.register_hook(self._hook(window, column, param)))
        self.open[key] = window

    def close(self, key: int) -> None:
        """One step of the group: close its window when this was its last step."""
        window = self.open.get(key)
        if window is None:
            return
        window.steps_left -= 1
        if window.steps_left > 0:
            return
        for handle in window.handles:
            handle.remove()
        del self.open[key]
        self.closed.append(window)

    def give_step(self, step: int) -> None:
        """`Monitor.step`: the windows closed since the last one are verdicts of this step (given at `settle`)."""
        self.unjudged += [(step, window) for window in self.closed]
        self.closed = []

    def settle(self) -> None:
        """Read the windows' reductions (one copy to the host) and add the verdicts of the windows given a step."""
        judged, self.unjudged = self.unjudged, []
        held = [(window, column, flag) for _, window in judged for column, flag in window.held]
        if held:
            device = held[0][2].device
            flags = torch.stack([flag.to(device) for _, _, flag in held]).cpu().tolist()
            for (window, column, _), nonzero in zip(held, flags):
                if not nonzero:
                    window.reset.add(column)
        for step, window in judged:
            window.held = []
            for name, columns in self.networks.items():
                received = window.received.intersection(columns)
                if received:
                    self.verdicts.setdefault(name, []).append((step, bool(window.reset.intersection(columns))))

    def stop(self) -> None:
        """Remove every hook and drop the open windows (at the end of the run, or when the watched tensors are
        grouped anew)."""
        for window in self.open.values():
            for handle in window.handles:
                handle.remove()
        self.open = {}

    @staticmethod
    def _hook(window: Window, column: int, param: torch.Tensor) -> Callable[[torch.Tensor], None]:
        """The tensor hook: it runs before backward adds `grad` to `param.grad`, so `param.grad` is what the step
        before left there, unless it was reset since."""

        def hook(grad: torch.Tensor) -> None:
            window.received.add(column)
            if column not in window.reset:
                held = param.grad
                if held is None:
                    window.reset.add(column)
                else:
                    window.held.append((column, held.any()))  # read at `settle`; the host does not wait

        return hook


def accumulation_summary(verdicts: list[tuple[int, bool]]) -> dict[str, int | None]:
    """A network's windows: how many were checked, how many saw no reset, and the trailing run of windows without
    a reset (its length and first step)."""
    unreset = sum(1 for _, reset in verdicts if not reset)
    trailing = 0
    for _, reset in reversed(verdicts):
        if reset:
            break
        trailing += 1
    since = verdicts[len(verdicts) - trailing][0] if trailing else None
    return {"windows": len(verdicts), "windows_unreset": unreset, "trailing_unreset": trailing,
            "unreset_since_step": since}

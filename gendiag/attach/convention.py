"""How a network is called, read from one call: which argument is the batch x and which, if any, the time t.

x is the first tensor argument (positional, then keyword) with a batch dimension, at least two dimensions and more
than one value per row (a (B, 1) tensor is x only where nothing else is); t is the first other argument that reads
as one time per row: a Python number, a one-element tensor, or a (B,) or (B, 1) tensor for a batch of B. A network
fed t inside x (`cat([x, t])`) is read as having no time; `gendiag attach` says so in its report."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Convention:
    """Where x and t sit in a call: a position or a keyword name (t None: no time argument)."""

    x_arg: int | str
    t_arg: int | str | None

    def describe(self) -> str:
        where = {True: "argument {}", False: "keyword {!r}"}
        x = where[isinstance(self.x_arg, int)].format(self.x_arg)
        if self.t_arg is None:
            return f"x = {x}, no time argument"
        return f"x = {x}, t = {where[isinstance(self.t_arg, int)].format(self.t_arg)}"


def _places(args: tuple, kwargs: dict) -> list[tuple[int | str, Any]]:
    return [*enumerate(args), *kwargs.items()]


def read_convention(args: tuple, kwargs: dict) -> Convention | None:
    """The convention of one call, or None when no argument is a batch of at least two dimensions."""
    places = _places(args, kwargs)
    batches = [(place, value) for place, value in places
               if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[0] > 0]
    if not batches:
        return None
    wide = [place for place, value in batches if value.numel() != value.shape[0]]  # a (B, 1) tensor is a time
    x_place = (wide or [batches[0][0]])[0]
    batch = dict(places)[x_place].shape[0]
    t_place = next((place for place, value in places if place != x_place and is_time(value, batch)), None)
    return Convention(x_place, t_place)


def is_time(value: Any, batch: int) -> bool:
    """Whether `value` reads as the time of a batch of `batch` rows (see the module's docstring)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    if not isinstance(value, torch.Tensor) or value.is_complex():
        return False
    return value.numel() == 1 or (value.numel() == batch and value.shape[0] == batch and value.dim() <= 2)


def argument(args: tuple, kwargs: dict, where: int | str | None) -> Any:
    """The argument at a position or keyword, None where the call has none there."""
    if where is None:
        return None
    if isinstance(where, str):
        return kwargs.get(where)
    return args[where] if where < len(args) else None


def row_times(t: Any, batch: int) -> torch.Tensor | None:
    """The time of a call as a (B,) float tensor, detached; None where it is not one (see `is_time`)."""
    if t is None or not is_time(t, batch):
        return None
    if isinstance(t, numbers.Real):
        return torch.full((batch,), float(t))
    return t.detach().reshape(-1).expand(batch).float() if t.numel() == 1 else t.detach().reshape(batch).float()

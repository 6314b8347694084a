"""How far an EMA copy and the network it follows have moved since the copy was put under watch.

`EmaTrack` keeps both networks' weights at the start (a float copy on the CPU) and, at each reading, measures the
Euclidean distance of each from its start over all parameters together, and the distance between the two: a copy
that averages over about as many steps as the run has moves far less than the network (its decay is too high for
the run's length), one that is never updated does not move at all."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EmaReading:
    """One reading: the step, the copy's and the network's distance from their own start weights, the distance
    between them now, and the network's start weights' norm (the scale of those distances)."""

    step: int
    ema_moved: float
    model_moved: float
    gap: float
    model_norm: float


class EmaTrack:
    """An EMA copy (`ema`) of the watched network `follows`, read at chosen steps (`read`)."""

    def __init__(self, ema: str, follows: str, ema_module: torch.nn.Module, model_module: torch.nn.Module,
                 step: int) -> None:
        self.ema, self.follows, self.start_step = ema, follows, step
        self._ema, self._model = ema_module, model_module
        self._ema_start = _weights(ema_module)
        self._model_start = _weights(model_module)
        self._model_norm = math.sqrt(sum(float(w.double().pow(2).sum()) for w in self._model_start))
        self.readings: list[EmaReading] = []

    def read(self, step: int) -> EmaReading:
        """Measure both networks now (no gradients, nothing changed) and keep the reading."""
        ema_moved = model_moved = gap = 0.0
        for ema_now, model_now, ema_then, model_then in zip(_weights(self._ema), _weights(self._model),
                                                            self._ema_start, self._model_start):
            ema_now, model_now = ema_now.double(), model_now.double()
            ema_moved += float((ema_now - ema_then).pow(2).sum())
            model_moved += float((model_now - model_then).pow(2).sum())
            gap += float((ema_now - model_now).pow(2).sum())
        reading = EmaReading(step, math.sqrt(ema_moved), math.sqrt(model_moved), math.sqrt(gap), self._model_norm)
        if self.readings and self.readings[-1].step == step:
            self.readings[-1] = reading
        else:
            self.readings.append(reading)
        return reading


def _weights(module: torch.nn.Module) -> list[torch.Tensor]:
    """Every parameter of `module` as a detached float copy on the CPU, in registration order."""
    with torch.no_grad():
        return [param.detach().float().cpu().clone() for param in module.parameters()]

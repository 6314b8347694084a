"""torchcfm: `TorchCFMMonitor`, a flow-matching `Monitor` for a loop built on a torchcfm flow matcher
(`ConditionalFlowMatcher`, `ExactOptimalTransportConditionalFlowMatcher`, ...) and the network it trains.

    mon = TorchCFMMonitor("runs/cfm", FM, model, optimizer=opt)

torchcfm computes the path (x_t and its target u_t) in `FM.sample_location_and_conditional_flow(x0, x1)` and
leaves the network to the loop, so watching the inner network is enough for the inputs, time and field probes:
- each training call of `sample_location_and_conditional_flow(x0, x1, ...)` is observed: x1 as the data, x0 as the
  source (torchcfm's convention: x0 the source, x1 the target; t runs from 0 at the source to 1 at the data);
- the network is watched under its call convention, read from torchcfm's own models where it can be:
  `"cat"` for `torchcfm.models.MLP` with `time_varying=True`, called on `torch.cat([x, t[:, None]], -1)`;
  `"t, x"` for torchcfm's UNets (`UNetModel`, `UNetModelWrapper`), called as `model(t, x)`; `"x, t"` for a network
  of your own called as `model(x, t)`. Pass `convention=` for any network that is not torchcfm's.
The loop still reports its steps (`mon.step(step, loss, t=t, per_sample_loss=...)`) and runs its sampler inside
`with mon.sampling():`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from gendiag.context import Call, Inputs
from gendiag.integrations import require, wrap_method
from gendiag.monitor import Monitor

require("torchcfm", "torchcfm", "torchcfm")

CONVENTIONS: dict[str, tuple[Inputs, Call]] = {
    "cat": (lambda args, kwargs: (args[0][..., :-1], args[0][..., -1]),
            lambda net, x, t: net(torch.cat([x, t[:, None]], dim=-1))),
    "t, x": (lambda args, kwargs: (args[1], args[0]), lambda net, x, t: net(t, x)),
    "x, t": (lambda args, kwargs: (args[0], args[1]), lambda net, x, t: net(x, t)),
}


def convention_of(model: torch.nn.Module) -> str | None:
    """The call convention of torchcfm's own models ("cat" for its time-varying MLP, "t, x" for its UNets), or None
    for a network torchcfm did not define."""
    name = type(model).__name__
    module = type(model).__module__
    if not module.startswith("torchcfm."):
        return None
    if name == "MLP":
        return "cat" if getattr(model, "time_varying", False) else None
    if name.startswith("UNetModel"):
        return "t, x"
    return None


def _convention(model: torch.nn.Module, convention: str | None) -> str:
    """The convention given, else torchcfm's for its own model; ValueError naming the choices otherwise."""
    convention = convention or convention_of(model)
    if convention is None:
        raise ValueError(f"TorchCFMMonitor: cannot tell how {type(model).__name__} is called; pass convention= "
                         f"one of {list(CONVENTIONS)}")
    if convention not in CONVENTIONS:
        raise ValueError(f"TorchCFMMonitor: convention must be one of {list(CONVENTIONS)}, got {convention!r}")
    return convention


class TorchCFMMonitor(Monitor):
    """A flow-matching `Monitor` that observes the data and source batches the torchcfm `matcher` is given in
    training and watches `model` (when given) under its call convention.

    Args:
        run_dir: the run folder, as for `Monitor`.
        matcher: a torchcfm flow matcher (anything with `sample_location_and_conditional_flow(x0, x1, ...)`).
        model: the network the loop trains; or watch it later with `watch_model`.
        optimizer: the optimizer that trains it, for gradients read at each optimizer step.
        convention: how the loop calls the network: "cat", "t, x" or "x, t" (see the module's doc); read from
            torchcfm's own models when left out.
        name: the network's name in the report.
        **monitor_kwargs: the other arguments of `Monitor` (`probes=`, `every=`, `overwrite=`, facts); the task is
            "flow".
    """

    def __init__(self, run_dir: str | Path, matcher: Any, model: torch.nn.Module | None = None, *,
                 optimizer: torch.optim.Optimizer | None = None, convention: str | None = None,
                 name: str = "velocity", **monitor_kwargs: Any) -> None:
        if "task" in monitor_kwargs:
            raise ValueError("TorchCFMMonitor: the task is 'flow'; leave task= out")
        if not callable(getattr(matcher, "sample_location_and_conditional_flow", None)):
            raise TypeError(f"TorchCFMMonitor: matcher must be a torchcfm flow matcher (with "
                            f"sample_location_and_conditional_flow), got {type(matcher).__name__}")
        if model is not None:
            convention = _convention(model, convention)
        super().__init__(run_dir, task="flow", **monitor_kwargs)
        self.matcher = matcher
        self._restore = wrap_method(matcher, "sample_location_and_conditional_flow", self._observed)
        if model is not None:
            self.watch_model(model, name=name, convention=convention, optimizer=optimizer)

    def watch_model(self, model: torch.nn.Module, name: str = "velocity", convention: str | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> torch.nn.Module:
        """Watch the network the loop trains, called as `convention` says (read from torchcfm's models if None)."""
        inputs, call = CONVENTIONS[_convention(model, convention)]
        return self.watch(model, name=name, inputs=inputs, call=call, optimizer=optimizer)

    def finish(self, *, partial: str | None = None) -> Any:
        """As `Monitor.finish`; also gives the matcher its own `sample_location_and_conditional_flow` back."""
        self._restore()
        return super().finish(partial=partial)

    def _observed(self, sample_path: Any) -> Any:
        @functools.wraps(sample_path)
        def observed(x0: torch.Tensor, x1: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self._mode == "train" and not self.ctx.recording_suspended:
                self.observe_data(x1, role="data")
                self.observe_data(x0, role="source")
            return sample_path(x0, x1, *args, **kwargs)

        return observed

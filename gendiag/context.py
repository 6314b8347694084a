"""What a probe may touch: the run folder, the loggers, the facts the user gave, and a safe way to
evaluate a watched network."""

from __future__ import annotations

import contextlib
import numbers
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from gendiag.figures.drawing import Drawer, png_bytes
from gendiag.figures.evidence import evidence_codes
from gendiag.quantities.guidance import GuidanceWatch
from gendiag.quantities.observed import ObservedValues
from gendiag.sinks import Sink

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gendiag.sinks.scalars import ScalarTable
    from gendiag.sinks.tensorboard import TensorBoardSink


Inputs = Callable[[tuple, dict], tuple[Any, ...]]
Call = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], Any]


@dataclass
class WatchedModel:
    """A watched network and its call convention: where x, t and the condition sit in a call (`x_arg`, `t_arg`,
    `cond_arg`), or `inputs(args, kwargs) -> (x, t)` or `(x, t, cond)` for any other convention, and `call(module,
    x, t)` to run it on (x, t); `ema_of` names the network it averages, for an EMA copy."""

    module: torch.nn.Module
    x_arg: int | str
    t_arg: int | str | None
    inputs: Inputs | None = None
    call: Call | None = None
    cond_arg: int | str | None = None  # where the condition (a class label, ...) sits in a call; None: not read
    time_form: tuple[tuple[int, ...], torch.dtype] | None = None  # per-row shape and dtype of t in training calls
    ema_of: str | None = None  # the watched network this one is an exponential moving average of

    def note_time(self, t: Any, batch: int) -> None:
        """Remember the form of a per-row time the loop passes (a (B, 1) tensor, integer timesteps), once, so that
        `ProbeContext.evaluate` calls the network the way the loop does."""
        if self.time_form is None and isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[0] == batch:
            self.time_form = (tuple(t.shape[1:]), t.dtype)


def batch_times(t: Any, batch: int, where: str, hint: str = "") -> torch.Tensor | None:
    """The time of a call as a (B,) tensor: None stays None, a number or a 0-d or one-element tensor is broadcast
    to the batch, a (B,) or (B, 1) tensor is flattened. Anything else is a ValueError naming `where`, then `hint`."""
    if t is None:
        return None
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        return torch.full((batch,), float(t))
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{where}: the time must be a number or a tensor, got {type(t).__name__}{hint}")
    if t.numel() == 1:
        return t.detach().reshape(1).expand(batch)
    if t.numel() == batch and t.shape[0] == batch:
        return t.detach().reshape(batch)
    raise ValueError(f"{where}: the time has shape {tuple(t.shape)} for a batch of {batch}; expected a number, a 0-d "
                     f"tensor, (B,) or (B, 1){hint}")


@dataclass
class ProbeContext:
    """Shared state handed to every probe callback. `sinks` receive every scalar, figure and text logged through
    the context; `tb` and `table` are the two default ones (in `sinks` too), for what only they take
    (histograms, the custom-scalars layout; reading scalars back)."""

    run_dir: Path
    task: str
    facts: dict[str, Any]
    tb: "TensorBoardSink"
    table: "ScalarTable"
    sinks: list[Sink] | None = None  # None: [tb, table]
    models: dict[str, WatchedModel] = field(default_factory=dict)
    step: int = 0
    recording_suspended: bool = False
    layout: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)  # figure path -> its one-line caption in the report
    drawer: Drawer = field(default_factory=Drawer)
    scaler: Any = None  # the loop's torch.amp.GradScaler, when given to `Monitor.watch`/`watch_optimizer`
    observed: ObservedValues = field(default_factory=ObservedValues)  # what the Monitor screened (NaN rows, skips)
    guidance: GuidanceWatch = field(default_factory=GuidanceWatch)  # guided sampling, seen in the sampling calls
    figures: str = "all"  # "findings": a figure that is evidence for some codes waits for `draw_evidence`
    deferred: dict[str, tuple[frozenset[str], Callable[[], "Figure"], str, int | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sinks is None:
            self.sinks = [self.tb, self.table]

    def log_scalar(self, tag: str, value: float, step: int | None = None) -> None:
        """One number, to every sink (TensorBoard and the metrics table by default)."""
        at = self.step if step is None else step
        for sink in self.sinks:
            sink.scalar(tag, value, at)

    def add_chart(self, category: str, title: str, tags: list[str]) -> None:
        """Put several scalar tags (regexes) on one chart in TensorBoard's custom-scalars tab."""
        self.layout.setdefault(category, {})[title] = ["Multiline", list(tags)]

    def draw_figure(self, name: str, function: Callable[..., "Figure"], *args: Any, step: int | None = None,
                    caption: str | None = None) -> str:
        """`save_figure(function(*args), name, ...)`, with `function` run where the figure is drawn (in a child
        process where it can be), so that building the figure costs the run nothing either; `function` must only
        read its arguments. Returns the figure's relative path.

        Under `figures="findings"` a figure that is evidence for some finding codes (`gendiag.figures.evidence`)
        is only noted here; `draw_evidence` draws it at the end if one of its codes holds."""
        codes = evidence_codes(function)
        if codes and self.figures == "findings":
            relative = self._figure_path(name, caption)
            self.deferred[relative] = (codes, lambda: function(*args), name, step)
            return relative
        return self._draw(lambda: function(*args), name, step, caption)

    def draw_evidence(self, holding: set[str], shown: set[str]) -> list[str]:
        """Draw the deferred figures that show one of the `holding` codes or whose path a finding names (`shown`);
        returns the relative paths of those left undrawn."""
        left_out = []
        for relative, (codes, make, name, step) in self.deferred.items():
            if codes & holding or relative in shown:
                self._draw(make, name, step, None)
            else:
                left_out.append(relative)
        self.deferred.clear()
        return left_out

    def save_figure(self, figure: "Figure", name: str, step: int | None = None, caption: str | None = None) -> str:
        """Write a figure to figures/NAME.png and log the same image to every sink (drawn once, in a child process
        where it can be: the file and the sinks' images are there after `flush_figures`), close it where pyplot
        holds it; returns its relative path. `caption` (one line) is shown under the figure in the report."""
        relative = self._draw(lambda: figure, name, step, caption)
        pyplot = sys.modules.get("matplotlib.pyplot")  # a figure of the user's own; ours (`new_figure`) have no manager
        if pyplot is not None:
            pyplot.close(figure)
        return relative

    def _figure_path(self, name: str, caption: str | None) -> str:
        if not name or name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name:
            raise ValueError(f"save_figure: name {name!r} must be a relative name inside the run folder "
                             "(no '..', no absolute path)")
        relative = f"figures/{name}.png"
        if caption:
            self.captions[relative] = caption
        return relative

    def _draw(self, make: Callable[[], "Figure"], name: str, step: int | None, caption: str | None) -> str:
        relative = self._figure_path(name, caption)
        path = self.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        at = self.step if step is None else step

        def logged(png: bytes) -> None:
            for sink in self.sinks:
                sink.image(f"figures/{name}", png, at)

        self.drawer.draw(make, path, logged)
        return relative

    def flush_figures(self) -> None:
        """Wait for the figures still being drawn (see `gendiag.figures.drawing`) and log them to the sinks."""
        self.drawer.wait()

    def log_figure(self, figure: "Figure", tag: str, step: int | None = None) -> None:
        """Send a figure to the sinks only (TensorBoard's images over time), not to the run folder; close it."""
        png = png_bytes(figure)
        pyplot = sys.modules.get("matplotlib.pyplot")  # a figure of the user's own; ours have no manager
        if pyplot is not None:
            pyplot.close(figure)
        for sink in self.sinks:
            sink.image(tag, png, self.step if step is None else step)

    @contextlib.contextmanager
    def suspended_recording(self) -> Iterator[None]:
        """Forward calls made meanwhile are not recorded as training or sampling (a probe running the network
        itself), nor are watched optimizers' steps (rounds `gendiag attach` leaves unrecorded)."""
        before = self.recording_suspended
        self.recording_suspended = True
        try:
            yield
        finally:
            self.recording_suspended = before

    def cannot_evaluate(self, name: str) -> str | None:
        """Why `evaluate` cannot run watched network `name` (one line, for a probe's report), or None if it can."""
        watched = self.models[name]
        if watched.inputs is not None and watched.call is None:
            return (f"network {name!r} was watched with inputs= but without call=, so it cannot be run on (x, t); "
                    f"pass call=lambda net, x, t: ... to mon.watch")
        if watched.cond_arg is not None and watched.call is None:
            return (f"network {name!r} was watched with cond_arg= but without call=, so it cannot be run on (x, t) "
                    f"without a condition; pass call=lambda net, x, t: net(x, t, y) with a condition y to mon.watch")
        return None

    def evaluate(self, name: str, x: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        """Run watched network `name` on (x, t) without touching training state: no gradients, eval mode
        restored to what it was, no recording, inputs moved to the network's device and dtype. `t` (a number or a
        tensor) reaches the network as a (B,) tensor, through the watch's `call` where one was given."""
        watched = self.models[name]
        reason = self.cannot_evaluate(name)
        if reason is not None:
            raise ValueError(f"ctx.evaluate: {reason}")
        module = watched.module
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        x = x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)  # token ids stay integers
        if t is None and (watched.call is not None or watched.t_arg is not None):
            t = 0.0
        times = batch_times(t, x.shape[0], f"ctx.evaluate({name!r})")
        times = None if times is None else times.to(device=device, dtype=dtype)
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad(), self.suspended_recording():
                out = watched.call(module, x, times) if watched.call is not None else _call(watched, name, x, times)
        finally:
            module.train(was_training)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"ctx.evaluate({name!r}): the network returned {type(out).__name__}, expected a tensor")
        return out.detach().float().cpu()


def _call(watched: WatchedModel, name: str, x: torch.Tensor, t: torch.Tensor | None) -> Any:
    """Call the network with x and t placed where `x_arg` and `t_arg` say."""
    placements: dict[int | str, torch.Tensor] = {watched.x_arg: x}
    if watched.t_arg is not None:
        if t is not None and watched.time_form is not None:
            tail, dtype = watched.time_form
            t = t.reshape(len(t), *tail) if all(size == 1 for size in tail) else t
            t = t if dtype.is_floating_point else t.round().to(dtype)
        placements[watched.t_arg] = t
    positions = sorted(k for k in placements if isinstance(k, int))
    if positions != list(range(len(positions))):
        raise ValueError(f"watch({name!r}): positional x_arg/t_arg must be 0 and 1, got {positions}")
    args = [placements[i] for i in positions]
    kwargs = {k: v for k, v in placements.items() if isinstance(k, str)}
    return watched.module(*args, **kwargs)

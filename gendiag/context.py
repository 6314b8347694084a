"""What a probe may touch: the run folder, the loggers, the facts the user gave, and a safe way to
evaluate a watched network."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch

from gendiag.io import atomic_write_bytes
from gendiag.sinks.scalars import ScalarTable
from gendiag.sinks.tensorboard import TensorBoardSink

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class WatchedModel:
    module: torch.nn.Module
    x_arg: int | str
    t_arg: int | str | None


@dataclass
class ProbeContext:
    """Shared state handed to every probe callback."""

    run_dir: Path
    task: str
    facts: dict[str, Any]
    tb: TensorBoardSink
    table: ScalarTable
    models: dict[str, WatchedModel] = field(default_factory=dict)
    step: int = 0
    recording_suspended: bool = False
    layout: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def log_scalar(self, tag: str, value: float, step: int | None = None) -> None:
        """One number, to TensorBoard and to the metrics table."""
        at = self.step if step is None else step
        self.tb.scalar(tag, value, at)
        self.table.add(at, tag, value)

    def add_chart(self, category: str, title: str, tags: list[str]) -> None:
        """Put several scalar tags (regexes) on one chart in TensorBoard's custom-scalars tab."""
        self.layout.setdefault(category, {})[title] = ["Multiline", list(tags)]

    def save_figure(self, figure: "Figure", name: str, step: int | None = None) -> str:
        """Write a figure to figures/NAME.png, log the same image to TensorBoard (drawn once), close it; returns its
        relative path."""
        import matplotlib.pyplot as plt

        if not name or name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name:
            raise ValueError(f"save_figure: name {name!r} must be a relative name inside the run folder "
                             "(no '..', no absolute path)")
        relative = f"figures/{name}.png"
        path = self.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        png = io.BytesIO()
        figure.savefig(png, dpi=110, format="png", pil_kwargs={"compress_level": 1})
        plt.close(figure)
        atomic_write_bytes(path, png.getvalue())
        self.tb.png(f"figures/{name}", png.getvalue(), self.step if step is None else step)
        return relative

    @contextlib.contextmanager
    def suspended_recording(self) -> Iterator[None]:
        """Forward calls made by probes themselves are not recorded as training or sampling."""
        before = self.recording_suspended
        self.recording_suspended = True
        try:
            yield
        finally:
            self.recording_suspended = before

    def evaluate(self, name: str, x: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        """Run watched network `name` on (x, t) without touching training state: no gradients, eval mode
        restored to what it was, no recording, inputs moved to the network's device and dtype."""
        watched = self.models[name]
        module = watched.module
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        x = x.to(device=device, dtype=dtype)
        placements: dict[int | str, torch.Tensor] = {watched.x_arg: x}
        if watched.t_arg is not None:
            if not isinstance(t, torch.Tensor):
                t = torch.full((x.shape[0],), 0.0 if t is None else float(t))
            placements[watched.t_arg] = t.to(device=device, dtype=dtype)
        positions = sorted(k for k in placements if isinstance(k, int))
        if positions != list(range(len(positions))):
            raise ValueError(f"watch({name!r}): positional x_arg/t_arg must be 0 and 1, got {positions}")
        args = [placements[i] for i in positions]
        kwargs = {k: v for k, v in placements.items() if isinstance(k, str)}
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad(), self.suspended_recording():
                out = module(*args, **kwargs)
        finally:
            module.train(was_training)
        return out.detach().float().cpu()

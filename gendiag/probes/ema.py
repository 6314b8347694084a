"""EMA copies: a network watched with `ema_of=` is the exponential moving average of another watched network.

The Monitor records the copy's sampling calls under the network it follows (so the inputs and sampling-calls
probes compare them with that network's training calls) and leaves its other calls out. This probe reads how far
the copy and the network have moved from their weights at the watch (`gendiag.quantities.ema`) at the flushes
where a thinning stride of steps falls and at the end, and raises `ema-lagging` (`gendiag.rules.ema`) where the
copy moved far less than the network: a decay too high for the run's length, or an update never called. Its figure
(`gendiag.figures.ema`) is drawn at `finish` only where a copy lags."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.context import ProbeContext
from gendiag.figures.ema import CAPTION, ema_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.probes.thinning import LogStride
from gendiag.quantities.ema import EmaTrack
from gendiag.report.section import ProbeSection
from gendiag.rules.ema import ema_lagging

FIGURE = "ema_copies"


@register
class EmaProbe(Probe):
    """How far each EMA copy moved against the network it follows; `ema-lagging`."""

    name = "ema"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.tracks: list[EmaTrack] = []
        self.stride = LogStride(budget=100, first=10)
        self._due = False  # the stride fell on a step since the last flush

    def on_watch(self, ctx: ProbeContext, name: str, module: torch.nn.Module) -> None:
        follows = ctx.models[name].ema_of
        if follows is not None:
            self.tracks.append(EmaTrack(name, follows, module, ctx.models[follows].module, ctx.step))

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if self.tracks and self.stride.take(record.step):
            self._due = True

    def on_flush(self, ctx: ProbeContext) -> None:
        """One reading a flush, at its step, where the stride fell since the last: the steps' records reach the probe
        at the flush, when the weights are the flush step's, not those of the steps the records name."""
        if not self._due:
            return
        self._due = False
        for track in self.tracks:
            reading = track.read(ctx.step)
            ctx.log_scalar(f"ema/{track.ema}/moved_ratio",
                           reading.ema_moved / reading.model_moved if reading.model_moved else 0.0, ctx.step)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not self.tracks:
            return None
        lines = []
        for track in self.tracks:
            last = track.read(ctx.step)
            lines.append(f"`{track.ema}` (EMA of `{track.follows}`), over steps {track.start_step}–{last.step}: the "
                         f"network moved {last.model_moved:.4g} from its starting weights, the copy "
                         f"{last.ema_moved:.4g}, and they end {last.gap:.4g} apart.")
        figures = []
        if self.findings(ctx):
            tracks = [(track.ema, track.follows, track.start_step, list(track.readings)) for track in self.tracks]
            figures.append(ctx.draw_figure(FIGURE, ema_figure, tracks, caption=CAPTION))
        return ProbeSection(title="EMA copies", text=" ".join(lines), figures=figures)

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        return [finding for track in self.tracks for finding in ema_lagging(track, f"figures/{FIGURE}.png")]

    def state(self) -> dict[str, Any]:
        return {track.ema: {"follows": track.follows, **({} if not track.readings else {
            "ema_moved": track.readings[-1].ema_moved, "model_moved": track.readings[-1].model_moved,
            "gap": track.readings[-1].gap})} for track in self.tracks}

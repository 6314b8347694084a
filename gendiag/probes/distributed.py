"""The multi-process probe: on every rank of an initialised process group, fingerprints of the times passed to
`Monitor.step`, of the times a watched network is called with in training (when another probe records forward
calls: their rows are chosen alike on every rank), of the noise (`observe_data(role="source")`) and of the data
batches; at `finish` every rank's
fingerprints reach rank 0 (`gendiag.distributed.combine`), whose rules compare them
(`gendiag.rules.distributed`). Its section says how many ranks there were and which probes' statistics were
combined across them.

The Monitor adds it by itself when `torch.distributed` is initialised; it is not in the catalogue (one process has
no ranks to compare).

Findings:
- `ddp-same-noise-across-ranks` (warning): another rank drew the same times and noise as rank 0, step for step.
- `distributed-sampler-epoch-unset` (warning): a rank's data batches come back in the same order every epoch.

Their figures (`gendiag.figures.distributed`) are drawn by rank 0 at `finish`, each only where its finding holds.
"""

from __future__ import annotations

from typing import Any

import torch

from gendiag.context import ProbeContext
from gendiag.figures.distributed import NOISE_CAPTION, ORDER_CAPTION, epoch_order_figure, same_noise_figure
from gendiag.findings import Finding
from gendiag.probes.base import ForwardCall, Probe, StepRecord
from gendiag.quantities.distributed import Fingerprints
from gendiag.report.section import ProbeSection
from gendiag.rules.distributed import DRAWN, distributed_findings, fixed_order_ranks, judge_ranks

NOISE_FIGURE, ORDER_FIGURE = "distributed_same_noise", "distributed_epoch_order"
SUM = 1  # the column of a fingerprint row holding the tensor's sum: what the figures plot


class DistributedProbe(Probe):
    """Fingerprints of each rank's draws and data; `ddp-same-noise-across-ranks`, `distributed-sampler-epoch-unset`."""

    name = "distributed"

    def __init__(self, world: int, backend: str, every: int = 1) -> None:
        super().__init__(every)
        self.world, self.backend = world, backend
        self.streams = {name: Fingerprints() for name in ("times", "call_times", "noise", "data")}
        self.everyone: list[dict[str, list[tuple]]] | None = None  # every rank's tables, on rank 0 after combining
        self.combined: list[str] = []
        self.missed: list[str] = []
        self._judged: dict[str, Any] | None = None

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if record.t is not None and record.t.numel() > 0:
            self.streams["times"].add(record.t)

    def on_forward(self, ctx: ProbeContext, call: ForwardCall) -> None:
        if call.mode == "train" and call.t is not None and call.t.numel() > 0:
            self.streams["call_times"].add(call.t)

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        self.streams["noise" if role == "source" else "data"].add(batch)

    def fingerprints(self) -> dict[str, list[tuple]]:
        """This rank's fingerprint tables, read from the device: what it sends at `finish`."""
        return {name: stream.table() for name, stream in self.streams.items()}

    def judged(self) -> dict[str, Any] | None:
        """The comparison of every rank's tables, once they have been combined (None before)."""
        if self._judged is None and self.everyone is not None:
            self._judged = judge_ranks(self.everyone)
        return self._judged

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        judged = self.judged()
        if judged is None:
            return []
        return distributed_findings(judged, f"figures/{NOISE_FIGURE}.png", f"figures/{ORDER_FIGURE}.png")

    def finish(self, ctx: ProbeContext) -> ProbeSection:
        processes = f"{self.world} process{'es' if self.world > 1 else ''}"
        lines = [f"Trained on {processes} ({self.backend}); this report was written by rank 0."]
        if self.combined:
            lines.append(f"Combined across the ranks before judging: {', '.join(self.combined)}. Every other probe "
                         f"judged what rank 0 saw.")
        else:
            lines.append("No statistics were combined across the ranks: every probe judged what rank 0 saw.")
        lines += [f"Not combined: {line}" for line in self.missed]
        judged = self.judged()
        if judged is None:
            lines.append("The ranks' draws and data order were not compared (a rank stopped early, or not every "
                         "rank made this Monitor).")
        figures = [] if judged is None or self.everyone is None else self._draw(ctx, judged, self.everyone)
        return ProbeSection(title="Distributed training", text="\n\n".join(lines), figures=figures)

    def _draw(self, ctx: ProbeContext, judged: dict[str, Any], everyone: list[dict[str, list[tuple]]]) -> list[str]:
        """The figure of each finding that holds, from every rank's fingerprint tables."""
        codes = {finding.code for finding in distributed_findings(judged)}
        figures = []
        if "ddp-same-noise-across-ranks" in codes:
            seen = [stream for stream in DRAWN if any(row["compared"] for row in judged["same"][stream])]
            sums = {stream: [[row[SUM] for row in tables.get(stream, [])] for tables in everyone]
                    for stream in seen}
            shares = [(stream, row["rank"], row["share"]) for stream in seen for row in judged["same"][stream]]
            figures.append(ctx.draw_figure(NOISE_FIGURE, same_noise_figure, sums, shares, caption=NOISE_CAPTION))
        if "distributed-sampler-epoch-unset" in codes:
            ranks = [(row["rank"], row["period"], row["share"],
                      [fingerprint[SUM] for fingerprint in everyone[row["rank"]].get("data", [])])
                     for row in fixed_order_ranks(judged)]
            figures.append(ctx.draw_figure(ORDER_FIGURE, epoch_order_figure, ranks, caption=ORDER_CAPTION))
        return figures

    def state(self) -> dict[str, Any]:
        return {"world_size": self.world, "backend": self.backend, "combined": self.combined,
                "not_combined": self.missed, "comparison": self.judged()}

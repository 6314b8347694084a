"""The values the run observed: NaN or infinite rows, and batches no probe could use.

The Monitor screens every tensor it is handed before any probe sees it (`gendiag.quantities.observed`): rows holding
NaN or infinite values are counted and left out, unusable batches are counted and skipped, so that a run never stops
on what it observes. This probe turns those counts into findings (`gendiag.rules.observed`):
- `data-nonfinite` (critical): observed data or source rows held NaN or infinite values.
- `outputs-nonfinite` (critical): a watched network's outputs in training, or a VAE's latents, did.
- `samples-nonfinite` (critical from `observed.samples_critical_share` of the samples, else warning): observed
  samples or the outputs of sampling calls did.
- `batch-skipped` (info): batches that were 0-d, empty, complex, or of another row shape than the first.
Each names the first step, the place and the share of rows. The three non-finite findings name one figure, drawn
only where one of them holds: the non-finite rows of each place over the steps (`gendiag.figures.observed`).
"""

from __future__ import annotations

from typing import Any

from gendiag.context import ProbeContext
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.quantities.observed import ObservedValues
from gendiag.report.section import ProbeSection
from gendiag.rules.observed import observed_findings

FIGURE = "observed_nonfinite"
NONFINITE = ("data-nonfinite", "outputs-nonfinite", "samples-nonfinite")


@register
class ObservedValuesProbe(Probe):
    """NaN or infinite rows and unusable batches among what the run observed."""

    name = "observed-values"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.observed: ObservedValues | None = None

    def setup(self, ctx: ProbeContext) -> None:
        self.observed = ctx.observed

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        found = [finding for finding in observed_findings(ctx.observed, ctx.task) if finding.code in NONFINITE]
        if not found:
            return None
        from gendiag.figures.observed import CAPTION, nonfinite_figure

        places = [where for where in ctx.observed.tallies
                  if any(where in finding.evidence["places"] for finding in found)]
        series = {where: (*ctx.observed.by_step[where].series(), ctx.observed.by_step[where].width)
                  for where in places}
        figure = ctx.draw_figure(FIGURE, nonfinite_figure, series, caption=CAPTION)
        tallies = [ctx.observed.tallies[where] for where in places]
        text = "Rows holding NaN or infinite values: " + "; ".join(
            f"{where}: {tally.nonfinite_rows} of {tally.rows} from step {tally.first_step} to {tally.last_step}"
            for where, tally in zip(places, tallies)) + "."
        return ProbeSection(title="Observed values", text=text, figures=[figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        return observed_findings(ctx.observed, ctx.task, f"figures/{FIGURE}.png")

    def state(self) -> dict[str, Any]:
        return {} if self.observed is None else self.observed.state()

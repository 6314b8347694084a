"""Rule on the step time: `data-bottleneck` from `gendiag.quantities.timing.summarise_timing`."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding
from gendiag.rules.thresholds import TIMING_BOTTLENECK_SHARE, TIMING_MIN_STEPS


def is_bottleneck(summary: dict[str, Any]) -> bool:
    """Data phases take TIMING_BOTTLENECK_SHARE of the step time or more, over at least TIMING_MIN_STEPS steps."""
    return bool(summary["steps_measured"] >= TIMING_MIN_STEPS and summary["data_share"] >= TIMING_BOTTLENECK_SHARE)


def timing_findings(summary: dict[str, Any], figure: str | None) -> list[Finding]:
    """`data-bottleneck` when `is_bottleneck`."""
    return [bottleneck_finding(summary, figure)] if is_bottleneck(summary) else []


def bottleneck_finding(summary: dict[str, Any], figure: str | None) -> Finding:
    names = ", ".join(f"'{p}'" for p in summary["data_phases"])
    data_ms = sum(summary["ms_per_step"][p] for p in summary["data_phases"])
    return Finding(
        code="data-bottleneck", severity="warning",
        title="Preparing data takes most of the step time",
        message=(f"The {names} phase{'s' if len(summary['data_phases']) > 1 else ''} took {summary['data_share']:.0%} "
                 f"of the step time ({data_ms:.3g} of {summary['ms_per_step_total']:.3g} ms per step, over "
                 f"{summary['steps_measured']} steps): the model waits for its batches."),
        evidence={"data_share": summary["data_share"], "shares": summary["shares"],
                  "ms_per_step": summary["ms_per_step"], "ms_per_step_total": summary["ms_per_step_total"],
                  "steps_measured": summary["steps_measured"]},
        suggestion=("Prepare data ahead of the step: precompute or cache the data set, vectorise the data "
                    "generation, or use a DataLoader with num_workers > 0 and pin_memory; on a GPU, generate "
                    "batches on the device."),
        figure=figure,
    )



"""What the data representation probe measures on the kept rows of each role (data, source): spread,
near-duplicates, rendered point clouds, value profile, and for the source its likeness to N(0, I); the data's scale
against the source's; the training source against what sampling starts from. The checks themselves live in
`gendiag.quantities.representation` and `gendiag.quantities.source`; this module keeps the rows and runs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from gendiag.quantities.representation import (
    NoiseCheck, RenderCheck, ScaleComparison, Spread, ValueProfile, compare_scale, noise_check, rendered_point_cloud,
    spread, value_profile,
)
from gendiag.quantities.source import SourceComparison, compare_sources
from gendiag.rows import RowPicker

ROWS_PER_BATCH = 64
KEPT_BATCHES = 8
SAMPLED_TASKS = ("flow", "diffusion")
DECLARED_VALUES = 2**16  # values drawn from a declared source: 256 rows of 2D points, 64 rows of 64x64 images


class BatchSample:
    """The first batch and every k-th after it, at most `capacity` batches of at most `rows` rows: when full, every
    other kept batch is dropped and k doubles, so the kept batches span everything offered at a fixed cost. The rows
    of a batch are chosen at random (its own generator), so a batch whose rows come in order is sampled fairly."""

    def __init__(self, capacity: int = KEPT_BATCHES, rows: int = ROWS_PER_BATCH, seed: int = 0) -> None:
        self.capacity = capacity
        self.rows = rows
        self.picker = RowPicker(seed)
        self.stride = 1
        self.offered = 0
        self.batches: list[torch.Tensor] = []

    def offer(self, batch: torch.Tensor, role: str) -> None:
        index = self.offered
        self.offered += 1
        if index % self.stride:
            return
        if self.batches and batch.shape[1:] != self.batches[0].shape[1:]:
            raise ValueError(f"data_repr: {role} batches changed shape from {tuple(self.batches[0].shape[1:])} "
                             f"to {tuple(batch.shape[1:])} per sample")
        self.batches.append(self.picker.take(batch.detach(), self.rows).clone())  # on its device until read
        if len(self.batches) > self.capacity:
            self.batches = self.batches[::2]
            self.stride *= 2

    def rows_kept(self) -> torch.Tensor:
        """The kept rows on the host, without any holding NaN or infinite values (a batch observed after the first
        step is screened only at the flush, after its rows were kept; `data-nonfinite` names it)."""
        rows = torch.cat([b.cpu().to(torch.float64) for b in self.batches])
        return rows[torch.isfinite(rows.reshape(rows.shape[0], -1)).all(dim=1)]


@dataclass
class RoleChecks:
    """Every check on the kept rows of one role."""

    batch_size: int
    batches: int
    spread: Spread
    render: RenderCheck
    values: ValueProfile
    noise: NoiseCheck | None


@dataclass
class Representation:
    """Every check of one moment: per role, the checks on its kept rows; the data's scale against the source's
    (None without data, or without a source outside flow and diffusion); the training source against each of
    `others` ("sampler": the sampler's first inputs, "declared": rows of the declared source) where comparable."""

    rows: dict[str, torch.Tensor]
    checks: dict[str, RoleChecks]
    scale: ScaleComparison | None
    others: dict[str, torch.Tensor] = field(default_factory=dict)
    matches: dict[str, SourceComparison] = field(default_factory=dict)


def measure(rows: dict[str, torch.Tensor], batch_sizes: dict[str, int], batches: dict[str, int],
            others: dict[str, torch.Tensor], image_shape: Any, task: str) -> Representation:
    """Run every check on the kept `rows` of each role (`batch_sizes` and `batches`: the role's first batch size
    and the number of batches kept) and compare the training source with `others`."""
    checks = {role: RoleChecks(
        batch_size=batch_sizes[role], batches=batches[role], spread=spread(values),
        render=rendered_point_cloud(values, image_shape), values=value_profile(values),
        noise=noise_check(values) if role == "source" else None) for role, values in rows.items()}
    scale = None
    if "data" in rows and ("source" in rows or task in SAMPLED_TASKS):
        scale = compare_scale(rows["data"], rows.get("source"))
    matches = {}
    for label, other in (others.items() if "source" in rows else ()):
        comparison = compare_sources(rows["source"], other)
        if comparison is not None:
            matches[label] = comparison
    return Representation(rows, checks, scale, others, matches)


def role_numbers(checks: RoleChecks) -> dict[str, Any]:
    """The numbers of one role's checks, as the report's table and probe_data.json show them."""
    dup, render, values = checks.render.duplicates, checks.render, checks.values
    numbers: dict[str, Any] = {
        "batch size": checks.batch_size, "values per sample": checks.spread.dimension,
        "values per sample / batch size": checks.spread.dimension / checks.batch_size,
        "between / within spread": checks.spread.ratio, "samples compared": dup.samples,
        "effective distinct": round(dup.effective_distinct, 2), "distinct fraction": dup.distinct_fraction,
        "looks like a rendered point cloud": render.looks_rendered, "min": values.minimum, "max": values.maximum,
        "rms": values.rms, "distinct values": values.distinct, "two-level values": values.two_level,
    }
    if checks.noise is not None:
        numbers.update({"mean": checks.noise.mean, "std": checks.noise.std,
                        "normal-shape distance (KS)": checks.noise.ks_statistic,
                        "independence across samples": checks.noise.independence})
    return numbers


def comparison_numbers(c: SourceComparison) -> dict[str, Any]:
    """A source comparison's numbers, rounded, as evidence and probe_data.json show them."""
    return {"energy_distance": round(c.energy, 5), "p_value": round(c.p_value, 4),
            "energy_coefficient": round(c.coefficient, 4), "differs": c.differs, "rows_training": c.rows_a,
            "rows_compared": c.rows_b, "mean_training": c.mean_a, "mean_compared": c.mean_b,
            "std_training": c.std_a, "std_compared": c.std_b, "rms_training": round(c.rms_a, 4),
            "rms_compared": round(c.rms_b, 4)}

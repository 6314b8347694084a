"""Findings: what a probe concludes, with the numbers and the figure that back it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("critical", "warning", "info")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass
class Finding:
    """One diagnosis: a stable code, how bad it is, what it means, the evidence and what to change.

    `evidence` holds plain numbers, lists and short strings measured in the run (steps, t ranges, ratios);
    `figure` is the path of the figure that shows it, relative to the run folder.
    """

    code: str
    severity: str
    title: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    suggestion: str = ""
    figure: str | None = None
    probe: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"Finding {self.code!r}: severity {self.severity!r} is not one of {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "evidence": _plain(self.evidence)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        return cls(**data)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first; within a severity, in the order the probes produced them."""
    return sorted(findings, key=lambda f: SEVERITY_RANK[f.severity])


def _plain(value: Any) -> Any:
    """Evidence as JSON-ready Python values (tensors and numpy scalars become numbers, NaN becomes None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value

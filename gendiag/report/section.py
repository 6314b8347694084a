"""A section of the report: what a probe, a recipe or the user adds beside the findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ProbeSection:
    """A part of the report (a probe's, a user's `add_section`, a conclusion): markdown text, figures (paths
    relative to the run folder), a table. `captions` gives a figure (by path) its one-line caption;
    `conclusion` marks a section written from the findings (`Monitor.add_conclusion`), shown before them."""

    title: str
    text: str = ""
    figures: list[str] = field(default_factory=list)
    table: "pd.DataFrame | None" = None
    captions: dict[str, str] = field(default_factory=dict)
    conclusion: bool = False

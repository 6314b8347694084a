"""docs/attach.md stays the full list: every fact the Monitor accepts and every finding code, stage by stage in the
order the report uses."""

from __future__ import annotations

import re
from pathlib import Path

from gendiag.facts import FACTS
from gendiag.findings import STAGES

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "attach.md").read_text(encoding="utf-8")


def test_every_fact_has_a_row_in_the_facts_table() -> None:
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", PAGE, flags=re.MULTILINE))
    assert rows == set(FACTS)


def test_every_finding_code_is_listed_under_its_stage_in_order() -> None:
    for stage, codes in STAGES.items():
        line = re.search(rf"^- {re.escape(stage)}: (.*?)(?=^- |\Z)", PAGE, flags=re.MULTILINE | re.DOTALL)
        assert line is not None, f"docs/attach.md lists no stage {stage!r}"
        assert re.findall(r"`([a-z0-9-]+)`", line.group(1)) == list(codes)

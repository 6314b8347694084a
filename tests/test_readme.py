"""Every ```python block of README.md and of the pages under docs/ runs as written: each block is a complete
program (its own imports, tiny data, a few hundred steps), executed on its own in a fresh folder. A snippet that
does not run fails here, not in a new user's hands. The README's blocks are in the default test set; the docs
pages' are marked slow (CI runs them with `pytest -m slow`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = (
    ROOT / "docs" / "flattened_moons_faithful",  # a saved run folder, not documentation to execute
    # fragments of a user's own LightningModule and loops, not whole programs; the same calls run against the real
    # libraries in tests/test_integration_*.py (pytest -m integration)
    ROOT / "docs" / "integrations.md",
)
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def _pages() -> list[Path]:
    docs = [page for page in sorted((ROOT / "docs").rglob("*.md"))
            if not any(page.is_relative_to(skipped) for skipped in SKIPPED)]
    return [ROOT / "README.md", *docs]


def _blocks() -> list[pytest.param]:
    blocks = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            where = f"{page.relative_to(ROOT)}:{line}"
            marks = () if page.name == "README.md" and page.parent == ROOT else (pytest.mark.slow,)
            blocks.append(pytest.param(where, match.group(1), id=where, marks=marks))
    return blocks


BLOCKS = _blocks()


def test_the_readme_and_every_task_page_have_code_to_run() -> None:
    where = {block.values[0].split(":")[0] for block in BLOCKS}
    assert "README.md" in where
    assert {f"docs/tasks/{task}.md" for task in ("flow", "diffusion", "gan", "vae", "autoregressive")} <= where


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), BLOCKS)
def test_python_block_runs(where: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__main__"})  # noqa: S102  (the documentation's own code)
    for report in tmp_path.rglob("report.md"):
        assert "Partial report" not in report.read_text(encoding="utf-8"), f"{where}: {report} is partial"

"""Reports of a run: the verdict, a table of contents, the conclusions, the findings (causes first), then the
probes' sections.

`render_run` writes findings.json, sections.json, report.md and a self-contained report.html (figures
embedded), so that `gendiag report RUN_DIR` can render them again from the saved data alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gendiag.findings import SEVERITY_RANK, Finding, sort_findings
from gendiag.io import atomic_write_json, atomic_write_text
from gendiag.report.html import render_html
from gendiag.report.markdown import render_markdown
from gendiag.report.section import ProbeSection
from gendiag.sinks.scalars import ScalarTable

RUN_FILES = ("findings.json", "sections.json", "metrics.csv")


@dataclass
class Report:
    """What `Monitor.finish` returns: the findings and where the reports were written."""

    run_dir: Path
    findings: list[Finding]
    sections: list[ProbeSection] = field(default_factory=list)
    partial: str | None = None
    finish_seconds: float | None = None
    steps: int | None = None  # the last step of the run, for "first seen at step N of M"
    cleared: list[Finding] = field(default_factory=list)  # announced during training, no longer held at the end

    @property
    def markdown_path(self) -> Path:
        return self.run_dir / "report.md"

    @property
    def html_path(self) -> Path:
        return self.run_dir / "report.html"

    def worst(self) -> str | None:
        """The most severe finding's severity (a warning cause may stand before its critical consequence)."""
        return min((f.severity for f in self.findings), key=SEVERITY_RANK.__getitem__, default=None)


def render_run(run_dir: Path, findings: list[Finding], sections: list[ProbeSection],
               partial: str | None = None, header: dict[str, Any] | None = None,
               finish_seconds: float | None = None, steps: int | None = None,
               cleared: list[Finding] | None = None) -> Report:
    """Save the findings and sections, then write report.md and report.html.

    The reports are rendered from the saved form of the sections (as `gendiag report` reads them back), so that
    rendering a run again gives the same files byte for byte. `finish_seconds` is the time the Monitor spent on
    the report after training (the probes' final work, figures, tables), shown in the report; `steps` the run's
    last step, against which each finding's first step is shown; `cleared` the findings announced during training
    that no longer held at the end (shown apart from the findings, each with its first and last step)."""
    run_dir = Path(run_dir)
    findings = sort_findings(findings)
    cleared = list(cleared or [])
    saved_sections = [_section_to_dict(s) for s in sections]
    atomic_write_json(run_dir / "findings.json", {"partial": partial, "finish_seconds": finish_seconds,
                                                  "steps": steps, "findings": [f.to_dict() for f in findings],
                                                  "cleared": [f.to_dict() for f in cleared]})
    atomic_write_json(run_dir / "sections.json", saved_sections)
    write_reports(Report(run_dir, findings, [_section_from_dict(s) for s in saved_sections], partial,
                         finish_seconds, steps, cleared), header)
    return Report(run_dir, findings, sections, partial, finish_seconds, steps, cleared)


def write_reports(report: Report, header: dict[str, Any] | None = None) -> None:
    header = header if header is not None else _read_header(report.run_dir)
    atomic_write_text(report.markdown_path, render_markdown(report, header))
    atomic_write_text(report.html_path, render_html(report, header))


def load_run(run_dir: Path) -> Report:
    """Read a finished run's saved findings and sections back; a clear error for missing or corrupt files."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    missing = [name for name in ("findings.json", "sections.json") if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: run folder is missing {', '.join(missing)} (expected {', '.join(RUN_FILES)})")
    findings_data = _read_json(run_dir / "findings.json")
    sections_data = _read_json(run_dir / "sections.json")
    try:
        findings = [Finding.from_dict(item) for item in findings_data["findings"]]
        cleared = [Finding.from_dict(item) for item in findings_data.get("cleared", [])]
        sections = [_section_from_dict(item) for item in sections_data]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{run_dir}: findings.json or sections.json has an unexpected layout ({error})") from error
    return Report(run_dir, findings, sections, findings_data.get("partial"), findings_data.get("finish_seconds"),
                  findings_data.get("steps"), cleared)


def check_complete(report: Report) -> None:
    """Before a report is rendered again: the run's metrics.csv is there and readable and every figure its
    sections show is there, so that a damaged run folder is an error rather than a report without images."""
    run_dir = report.run_dir
    if not (run_dir / "metrics.csv").is_file():
        raise FileNotFoundError(f"{run_dir}: run folder is missing metrics.csv (expected {', '.join(RUN_FILES)})")
    ScalarTable.load(run_dir / "metrics.csv")
    gone = [figure for section in report.sections for figure in section.figures if not (run_dir / figure).is_file()]
    if gone:
        raise FileNotFoundError(f"{run_dir}: run folder is missing {len(gone)} figure(s) its report shows, "
                                f"first {gone[0]} (expected every figure named in sections.json)")


def _read_header(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    return _read_json(path) if path.is_file() else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: corrupt JSON ({error})") from error


def _section_to_dict(section: ProbeSection) -> dict[str, Any]:
    table = None
    if section.table is not None:  # orient="split" drops the index's name: the table's first column header
        table = {**json.loads(section.table.to_json(orient="split")), "index_name": section.table.index.name}
    return {"title": section.title, "text": section.text, "figures": section.figures, "table": table,
            "captions": section.captions, "conclusion": section.conclusion}


def _section_from_dict(data: dict[str, Any]) -> ProbeSection:
    import pandas as pd

    table = None
    if data.get("table") is not None:
        split = data["table"]
        table = pd.DataFrame(split["data"], columns=split["columns"], index=split["index"])
        table.index.name = split.get("index_name")
    return ProbeSection(title=data["title"], text=data.get("text", ""), figures=list(data.get("figures", [])),
                        table=table, captions=dict(data.get("captions", {})),
                        conclusion=bool(data.get("conclusion", False)))

"""report.md: the same content as the HTML report, figures linked by relative path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from gendiag.findings import Finding
    from gendiag.report import Report

from gendiag.live import known_at

_MARK = {"critical": "🔴 CRITICAL", "warning": "🟠 WARNING", "info": "🔵 INFO"}


def render_markdown(report: "Report", header: dict[str, Any]) -> str:
    lines = [f"# gendiag report: {header.get('case', report.run_dir.name)}", ""]
    if report.partial:
        lines += [f"> **Partial report**: {report.partial}.", ""]
    for key in ("description", "started", "profile", "seed"):
        if header.get(key) is not None:
            lines.append(f"- **{key}**: {header[key]}")
    for key, value in header.get("results", {}).items():
        lines.append(f"- **{key}**: {_cell(value)}")
    if report.finish_seconds is not None:
        lines.append(f"- **report written in**: {finish_cost(report.finish_seconds)}")
    lines += ["", "## Findings", ""]
    if not report.findings:
        lines.append("No findings: nothing in this run looked wrong to the probes that ran.")
    if early := known_early(report):
        lines += [early, ""]
    for finding in report.findings:
        when = known_at(finding, report.steps)
        heading = f"### {_MARK[finding.severity]} `{finding.code}` — {finding.title}"
        lines += [heading + (f" · {when}" if when else ""), ""]
        if explains := explained(report.findings, finding):
            lines += [f"*Likely explains {', '.join(f'`{code}`' for code in explains)} (below): fix this first.*", ""]
        lines += [finding.message, ""]
        if finding.evidence:
            lines.append("| evidence | value |")
            lines.append("|---|---|")
            lines += [f"| {key} | {_cell(value)} |" for key, value in finding.evidence.items()]
            lines.append("")
        if finding.suggestion:
            lines += [f"**What to change:** {finding.suggestion}", ""]
        if finding.figure:
            lines += [f"![{finding.code}]({finding.figure})", ""]
    if report.cleared:
        lines += ["## Cleared during training", "",
                  "Announced while training ran, no longer found at the end (a passing spell, or fixed):", ""]
        lines += [f"- {_MARK[f.severity]} `{f.code}` — {f.title} · {known_at(f, report.steps)}: {f.message}"
                  for f in report.cleared]
        lines.append("")
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text, ""]
        if section.table is not None:
            lines += [markdown_table(section.table), ""]
        lines += [f"![{section.title}]({figure})\n" for figure in section.figures]
    return "\n".join(lines) + "\n"


def known_early(report: "Report") -> str:
    """One sentence on when each critical finding was first known during training ('' when none was)."""
    known = [f"`{f.code}` at step {f.first_step} of {report.steps} ({f.first_step / report.steps:.0%})"
             for f in report.findings if f.severity == "critical" and f.first_step is not None and report.steps]
    return f"Known during training: {', '.join(known)}." if known else ""


def explained(findings: list["Finding"], cause: "Finding") -> list[str]:
    """The codes of the findings that `cause` likely explains (their `consequence_of` names it)."""
    return [finding.code for finding in findings if cause.code in finding.consequence_of]


def finish_cost(seconds: float) -> str:
    """The time the Monitor spent on this report after training, in words."""
    return f"{seconds:.1f} s after training (the probes' final work, figures and tables)"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 12:
        return ", ".join(_cell(v) for v in value[:12]) + f", … ({len(value)} values)"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured markdown table (index as the first column)."""
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    rows = [[_cell(i)] + [_cell(v) for v in row] for i, row in zip(frame.index, frame.itertuples(index=False))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)

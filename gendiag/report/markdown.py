"""report.md: the same content as the HTML report, figures linked by relative path."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from gendiag.report.verdict import format_number, verdict

if TYPE_CHECKING:
    import pandas as pd

    from gendiag.findings import Finding
    from gendiag.report import Report
    from gendiag.report.section import ProbeSection

from gendiag.live import known_at

_MARK = {"critical": "🔴 CRITICAL", "warning": "🟠 WARNING", "info": "🔵 INFO"}
NOT_MEASURED = "not measured"
VERDICT_TITLE, CONTENTS_TITLE, RUN_TITLE = "Verdict", "Contents", "Run settings and results"


def render_markdown(report: "Report", header: dict[str, Any]) -> str:
    lines = [f"# gendiag report: {header.get('case', report.run_dir.name)}", ""]
    if report.partial:
        lines += [f"> **Partial report**: {report.partial}.", ""]
    found = verdict(report.findings, report.partial)
    lines += [f"## {VERDICT_TITLE}", "", f"**{found.headline}**", ""]
    for number, cause in enumerate(found.causes, start=1):
        finding = cause.finding
        line = f"{number}. **{finding.severity}** `{finding.code}`: {finding.title}"
        line += f" — **{cause.number}**." if cause.number else "."
        if cause.change:
            line += f" Change: {cause.change}"
        if cause.explains:
            line += f" (Likely explains {', '.join(f'`{code}`' for code in cause.explains)}.)"
        lines.append(line)
    if found.causes:
        lines.append("")
    if found.notes:
        lines += [f"{found.notes} more note{'s' if found.notes != 1 else ''} (info) under Findings.", ""]
    if report.finish_seconds is not None:
        lines += [f"- **report written in**: {finish_cost(report.finish_seconds)}", ""]
    conclusions, sections = split_sections(report.sections)
    lines += [f"## {CONTENTS_TITLE}", ""]
    lines += [f"- [{title}](#{github_slug(title)})" for title in contents(report, conclusions, sections)]
    lines.append("")
    for section in conclusions:
        lines += _section(section)
    lines += [f"## Findings ({len(report.findings)})", ""]
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
            if caption := captions(report).get(finding.figure):
                lines += [f"*{caption}*", ""]
    if report.cleared:
        lines += ["## Cleared during training", "",
                  "Announced while training ran, no longer found at the end (a passing spell, or fixed):", ""]
        lines += [f"- {_MARK[f.severity]} `{f.code}` — {f.title} · {known_at(f, report.steps)}: {f.message}"
                  for f in report.cleared]
        lines.append("")
    for section in sections:
        lines += _section(section)
    lines += [f"## {RUN_TITLE}", ""]
    lines += [f"- **{key}**: {_cell(value)}" for key, value in run_facts(header).items()] or ["(no run header)"]
    return "\n".join(lines) + "\n"


def _section(section: "ProbeSection") -> list[str]:
    lines = [f"## {section.title}", ""]
    if section.text:
        lines += [section.text, ""]
    if section.table is not None:
        lines += [markdown_table(section.table), ""]
    for figure in section.figures:
        lines += [f"![{section.title}]({figure})", ""]
        if figure in section.captions:
            lines += [f"*{section.captions[figure]}*", ""]
    return lines


def split_sections(sections: list["ProbeSection"]) -> tuple[list["ProbeSection"], list["ProbeSection"]]:
    """(the conclusions, the other sections), each in their order."""
    return [s for s in sections if s.conclusion], [s for s in sections if not s.conclusion]


def contents(report: "Report", conclusions: list["ProbeSection"], sections: list["ProbeSection"]) -> list[str]:
    """The titles of the page's parts after the verdict, in order."""
    return ([s.title for s in conclusions] + [f"Findings ({len(report.findings)})"] + [s.title for s in sections]
            + [RUN_TITLE])


def captions(report: "Report") -> dict[str, str]:
    """Every figure's caption, by path, from the sections that show it."""
    return {figure: caption for section in report.sections for figure, caption in section.captions.items()}


def run_facts(header: dict[str, Any]) -> dict[str, Any]:
    """What the run header says about the run (case settings, results), as the report lists it."""
    facts = {k: header[k] for k in ("description", "started", "profile", "seed", "threads", "device")
             if header.get(k) is not None}
    facts.update(header.get("results", {}))
    return facts


def github_slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


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
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURED
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, list) and len(value) > 12:
        return ", ".join(_cell(v) for v in value[:12]) + f", … ({len(value)} values)"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value).replace("|", "\\|")


def markdown_table(frame: "pd.DataFrame") -> str:
    """A DataFrame as a GitHub-flavoured markdown table (index as the first column); a missing value (NaN) reads
    "not measured", and a line under the table says which columns hold one."""
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    rows = [[_cell(i)] + [_cell(v) for v in row] for i, row in zip(frame.index, frame.itertuples(index=False))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    missing = [name for name, column in list(zip(header, zip(*rows)))[1:] if NOT_MEASURED in column]
    if missing:
        lines += ["", f"*{NOT_MEASURED}*: this measure does not apply to, or was not taken for, column "
                      f"{', '.join(missing)} (the section's text says what each measure needs)."]
    return "\n".join(lines)

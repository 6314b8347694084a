"""report.html: one self-contained page (figures embedded as data URIs) that opens from disk: the verdict, a
table of contents, the conclusions, the findings, the probes' sections, the run's settings and results."""

from __future__ import annotations

import base64
import html
import re
from typing import TYPE_CHECKING, Any

from gendiag.report.markdown import (CONTENTS_TITLE, RUN_TITLE, VERDICT_TITLE, captions, contents, explained,
                                     finish_cost, known_early, markdown_table, run_facts, split_sections,
                                     _cell)
from gendiag.live import known_at
from gendiag.report.verdict import verdict

if TYPE_CHECKING:
    from gendiag.report import Report
    from gendiag.report.section import ProbeSection

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #333}.finding{border-left:6px solid #888;padding:.3em 1em;margin:1em 0;background:#fafafa}
.critical{border-color:#c62828}.warning{border-color:#ef6c00}.info{border-color:#1565c0}
.badge{font-weight:bold;text-transform:uppercase;font-size:.8em;padding:.1em .5em;border-radius:3px;color:#fff}
.badge.critical{background:#c62828}.badge.warning{background:#ef6c00}.badge.info{background:#1565c0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0 0}code{background:#eee;padding:0 .3em}
figure{margin:.5em 0 1em}figcaption{font-size:.9em;color:#444;font-style:italic}
.partial{background:#fff3e0;border:1px solid #ef6c00;padding:.5em 1em}
.verdict{border:2px solid #333;padding:.2em 1em;background:#f5f5f5}.verdict li{margin:.3em 0}
.headline{font-size:1.1em;font-weight:bold}nav ol{columns:2}
"""
_INLINE_CODE = re.compile(r"`([^`]+)`")


def render_html(report: "Report", header: dict[str, Any]) -> str:
    import markdown  # the Markdown package is needed for reports only, not to train

    title = html.escape(str(header.get("case", report.run_dir.name)))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gendiag: {title}</title>",
             f"<style>{STYLE}</style></head><body><h1>gendiag report: {title}</h1>"]
    if report.partial:
        parts.append(f"<p class='partial'><b>Partial report</b>: {html.escape(report.partial)}.</p>")
    parts += _verdict(report)
    conclusions, sections = split_sections(report.sections)
    titles = contents(report, conclusions, sections)
    anchors = [f"part-{index}" for index in range(len(titles))]
    parts.append(f"<nav><h2>{CONTENTS_TITLE}</h2><ol>" + "".join(
        f"<li><a href='#{anchor}'>{html.escape(name)}</a></li>" for anchor, name in zip(anchors, titles))
        + "</ol></nav>")
    anchor = iter(anchors)
    for section in conclusions:
        parts += _section(report, section, next(anchor), markdown)
    parts.append(f"<h2 id='{next(anchor)}'>Findings ({len(report.findings)})</h2>")
    if not report.findings:
        parts.append("<p>No findings: nothing in this run looked wrong to the probes that ran.</p>")
    if early := known_early(report):
        parts.append(markdown.markdown(early))
    for index, finding in enumerate(report.findings):
        seen = known_at(finding, report.steps)
        parts.append(f"<div class='finding {finding.severity}' id='finding-{index}'>"
                     f"<h3><span class='badge {finding.severity}'>{finding.severity}</span> "
                     f"<code>{html.escape(finding.code)}</code> {inline(finding.title)}"
                     + (f" <small>· {html.escape(seen)}</small>" if seen else "") + "</h3>")
        if explains := explained(report.findings, finding):
            codes = ", ".join(f"<code>{html.escape(code)}</code>" for code in explains)
            parts.append(f"<p><i>Likely explains {codes} (below): fix this first.</i></p>")
        parts.append(f"<p>{inline(finding.message)}</p>")
        if finding.evidence:
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_cell(v))}</td></tr>"
                           for k, v in finding.evidence.items())
            parts.append(f"<table><tr><th>evidence</th><th>value</th></tr>{rows}</table>")
        if finding.suggestion:
            parts.append(f"<p><b>What to change:</b> {inline(finding.suggestion)}</p>")
        if finding.figure:
            parts.append(_figure(report, finding.figure, captions(report).get(finding.figure)))
        parts.append("</div>")
    if report.cleared:
        parts.append("<h2 id='cleared'>Cleared during training</h2><p>Announced while training ran, no longer found "
                     "at the end (a passing spell, or fixed):</p><ul>")
        parts += [f"<li><span class='badge {f.severity}'>{f.severity}</span> <code>{html.escape(f.code)}</code> "
                  f"{html.escape(f.title)} · {html.escape(known_at(f, report.steps))}: {html.escape(f.message)}</li>"
                  for f in report.cleared]
        parts.append("</ul>")
    for section in sections:
        parts += _section(report, section, next(anchor), markdown)
    facts = run_facts(header)
    parts.append(f"<h2 id='{next(anchor)}'>{RUN_TITLE}</h2>")
    parts.append("<ul>" + "".join(f"<li><b>{html.escape(str(k))}</b>: {inline(_cell(v))}</li>"
                                  for k, v in facts.items()) + "</ul>" if facts else "<p>(no run header)</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def inline(text: str) -> str:
    """Plain text as HTML: escaped, with `code` spans rendered as code."""
    pieces = _INLINE_CODE.split(text)  # odd pieces are the insides of backticks
    return "".join(f"<code>{html.escape(piece)}</code>" if index % 2 else html.escape(piece)
                   for index, piece in enumerate(pieces))


def _verdict(report: "Report") -> list[str]:
    found = verdict(report.findings, report.partial)
    parts = [f"<section class='verdict'><h2>{VERDICT_TITLE}</h2><p class='headline'>{html.escape(found.headline)}</p>"]
    if found.causes:
        items = []
        for cause in found.causes:
            finding = cause.finding
            index = report.findings.index(finding)
            item = (f"<li><span class='badge {finding.severity}'>{finding.severity}</span> "
                    f"<a href='#finding-{index}'><code>{html.escape(finding.code)}</code></a> {inline(finding.title)}")
            item += f" — <b>{inline(cause.number)}</b>." if cause.number else "."
            if cause.change:
                item += f" <i>Change:</i> {inline(cause.change)}"
            if cause.explains:
                item += " (Likely explains " + ", ".join(f"<code>{html.escape(c)}</code>" for c in cause.explains) + ".)"
            items.append(item + "</li>")
        parts.append("<ol>" + "".join(items) + "</ol>")
    if found.notes:
        parts.append(f"<p>{found.notes} more note{'s' if found.notes != 1 else ''} (info) under Findings.</p>")
    if report.finish_seconds is not None:
        parts.append(f"<p><b>report written in</b>: {html.escape(finish_cost(report.finish_seconds))}</p>")
    parts.append("</section>")
    return parts


def _section(report: "Report", section: "ProbeSection", anchor: str, markdown: Any) -> list[str]:
    parts = [f"<h2 id='{anchor}'>{html.escape(section.title)}</h2>"]
    if section.text:
        parts.append(markdown.markdown(section.text, extensions=["tables"]))
    if section.table is not None:
        parts.append(markdown.markdown(markdown_table(section.table), extensions=["tables"]))
    parts += [_figure(report, figure, section.captions.get(figure)) for figure in section.figures]
    return parts


def _figure(report: "Report", relative: str, caption: str | None) -> str:
    path = report.run_dir / relative
    if not path.is_file():
        return f"<p><i>figure {html.escape(relative)} is missing from the run folder</i></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    image = f"<img alt='{html.escape(relative)}' src='data:image/png;base64,{data}'>"
    return f"<figure>{image}" + (f"<figcaption>{inline(caption)}</figcaption>" if caption else "") + "</figure>"

"""report.html: one self-contained page (figures embedded as data URIs) that opens from disk."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

from gendiag.live import known_at
from gendiag.report.markdown import explained, finish_cost, known_early, markdown_table

if TYPE_CHECKING:
    from gendiag.report import Report

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #333}.finding{border-left:6px solid #888;padding:.3em 1em;margin:1em 0;background:#fafafa}
.critical{border-color:#c62828}.warning{border-color:#ef6c00}.info{border-color:#1565c0}
.badge{font-weight:bold;text-transform:uppercase;font-size:.8em;padding:.1em .5em;border-radius:3px;color:#fff}
.badge.critical{background:#c62828}.badge.warning{background:#ef6c00}.badge.info{background:#1565c0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}code{background:#eee;padding:0 .3em}
.partial{background:#fff3e0;border:1px solid #ef6c00;padding:.5em 1em}
"""


def render_html(report: "Report", header: dict[str, Any]) -> str:
    import markdown  # the Markdown package is needed for reports only, not to train

    title = html.escape(str(header.get("case", report.run_dir.name)))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gendiag: {title}</title>",
             f"<style>{STYLE}</style></head><body><h1>gendiag report: {title}</h1>"]
    if report.partial:
        parts.append(f"<p class='partial'><b>Partial report</b>: {html.escape(report.partial)}.</p>")
    facts = {k: header[k] for k in ("description", "started", "profile", "seed") if header.get(k) is not None}
    facts.update(header.get("results", {}))
    if report.finish_seconds is not None:
        facts["report written in"] = finish_cost(report.finish_seconds)
    if facts:
        parts.append("<ul>" + "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(_value(v))}</li>"
                                      for k, v in facts.items()) + "</ul>")
    parts.append(f"<h2>Findings ({len(report.findings)})</h2>")
    if not report.findings:
        parts.append("<p>No findings: nothing in this run looked wrong to the probes that ran.</p>")
    if early := known_early(report):
        parts.append(markdown.markdown(early))
    for finding in report.findings:
        seen = known_at(finding, report.steps)
        parts.append(f"<div class='finding {finding.severity}'>"
                     f"<h3><span class='badge {finding.severity}'>{finding.severity}</span> "
                     f"<code>{html.escape(finding.code)}</code> {html.escape(finding.title)}"
                     + (f" <small>· {html.escape(seen)}</small>" if seen else "") + "</h3>")
        if explains := explained(report.findings, finding):
            codes = ", ".join(f"<code>{html.escape(code)}</code>" for code in explains)
            parts.append(f"<p><i>Likely explains {codes} (below): fix this first.</i></p>")
        parts.append(f"<p>{html.escape(finding.message)}</p>")
        if finding.evidence:
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_value(v))}</td></tr>"
                           for k, v in finding.evidence.items())
            parts.append(f"<table><tr><th>evidence</th><th>value</th></tr>{rows}</table>")
        if finding.suggestion:
            parts.append(f"<p><b>What to change:</b> {html.escape(finding.suggestion)}</p>")
        if finding.figure:
            parts.append(_image(report, finding.figure))
        parts.append("</div>")
    if report.cleared:
        parts.append("<h2>Cleared during training</h2><p>Announced while training ran, no longer found at the end "
                     "(a passing spell, or fixed):</p><ul>")
        parts += [f"<li><span class='badge {f.severity}'>{f.severity}</span> <code>{html.escape(f.code)}</code> "
                  f"{html.escape(f.title)} · {html.escape(known_at(f, report.steps))}: {html.escape(f.message)}</li>"
                  for f in report.cleared]
        parts.append("</ul>")
    for section in report.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(markdown.markdown(section.text, extensions=["tables"]))
        if section.table is not None:
            parts.append(markdown.markdown(markdown_table(section.table), extensions=["tables"]))
        parts += [_image(report, figure) for figure in section.figures]
    parts.append("</body></html>")
    return "\n".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _image(report: "Report", relative: str) -> str:
    path = report.run_dir / relative
    if not path.is_file():
        return f"<p><i>figure {html.escape(relative)} is missing from the run folder</i></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(relative)}' src='data:image/png;base64,{data}'>"

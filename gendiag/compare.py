"""Several finished runs side by side in one report: the settings that differ, the headline results, which
finding codes each run has, and each run's key figures. `gendiag compare RUN_DIR... [--out DIR]`."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import markdown
import pandas as pd
import yaml

from gendiag.findings import SEVERITY_RANK, Finding
from gendiag.io import atomic_write_text
from gendiag.report import load_run
from gendiag.report.html import STYLE
from gendiag.report.markdown import markdown_table
from gendiag.rundir import create_run_dir

FIGURES_PER_RUN = 2
SETTING_SECTIONS = ("data", "model", "training", "sampling")


@dataclass
class RunSummary:
    """What a comparison needs from one run folder."""

    run_dir: Path
    label: str
    results: dict[str, Any]
    settings: dict[str, Any]
    findings: list[Finding]
    figures: list[str]


@dataclass
class Comparison:
    runs: list[RunSummary]
    markdown_path: Path
    html_path: Path


def load_summary(run_dir: str | Path) -> RunSummary:
    """Read a finished run folder (run.json, config.yaml, findings.json, sections.json)."""
    run_dir = Path(run_dir)
    report = load_run(run_dir)
    header = _read_json(run_dir / "run.json")
    config = _read_yaml(run_dir / "config.yaml")
    settings = {f"{section}.{key}": value for section in SETTING_SECTIONS
                for key, value in (config.get(section) or {}).items()}
    label = f"{header.get('case', run_dir.parent.name)} ({header.get('profile', 'default')}, {run_dir.name})"
    figures = [f for section in report.sections for f in section.figures if (run_dir / f).is_file()]
    return RunSummary(run_dir=run_dir, label=label, results=dict(header.get("results") or {}), settings=settings,
                      findings=report.findings, figures=figures[:FIGURES_PER_RUN])


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path | None = None,
                 root: str | Path = "reports") -> Comparison:
    """Write report.md and report.html comparing `run_dirs` into `out_dir` (default: a fresh ROOT/compare/...)."""
    if len(run_dirs) < 2:
        raise ValueError(f"compare: give at least two run folders, got {len(run_dirs)}")
    runs = [load_summary(path) for path in run_dirs]
    out = Path(out_dir) if out_dir is not None else create_run_dir(root, "compare")
    out.mkdir(parents=True, exist_ok=True)
    relative = markdown_document(runs, lambda run, figure: Path(os.path.relpath(run.run_dir / figure, out)).as_posix())
    embedded = markdown_document(runs, _data_uri)
    comparison = Comparison(runs, out / "report.md", out / "report.html")
    atomic_write_text(comparison.markdown_path, relative)
    atomic_write_text(comparison.html_path, _html(embedded))
    return comparison


def settings_table(runs: list[RunSummary]) -> pd.DataFrame:
    """The settings whose values differ between the runs (one row each, one column per run)."""
    keys = sorted({key for run in runs for key in run.settings})
    differing = [k for k in keys if len({json.dumps(run.settings.get(k), sort_keys=True, default=str)
                                         for run in runs}) > 1]
    frame = pd.DataFrame({_column(i, run): [_short(run.settings.get(k)) for k in differing]
                          for i, run in enumerate(runs)}, index=pd.Index(differing, name="setting"))
    return frame


def results_table(runs: list[RunSummary]) -> pd.DataFrame:
    """Every headline result any run reports (blank where a run lacks it)."""
    keys = list(dict.fromkeys(key for run in runs for key in run.results))
    return pd.DataFrame({_column(i, run): [run.results.get(k, "") for k in keys] for i, run in enumerate(runs)},
                        index=pd.Index(keys, name="result"))


def findings_table(runs: list[RunSummary]) -> pd.DataFrame:
    """Finding codes (most severe first) against runs: the severity where the run has the code, "—" where not."""
    worst: dict[str, int] = {}
    for run in runs:
        for finding in run.findings:
            worst[finding.code] = min(worst.get(finding.code, len(SEVERITY_RANK)), SEVERITY_RANK[finding.severity])
    codes = sorted(worst, key=lambda code: (worst[code], code))
    columns = {}
    for i, run in enumerate(runs):
        have = {f.code: f.severity for f in run.findings}
        columns[_column(i, run)] = [have.get(code, "—") for code in codes]
    return pd.DataFrame(columns, index=pd.Index(codes, name="finding"))


def markdown_document(runs: list[RunSummary], figure_link: Callable[[RunSummary, str], str]) -> str:
    """The comparison as markdown; `figure_link(run, figure)` gives each figure's address."""
    lines = ["# gendiag comparison", "", "Runs (columns below are numbered in this order):", ""]
    lines += [f"{i + 1}. {run.label}: `{run.run_dir}`" for i, run in enumerate(runs)]
    settings = settings_table(runs)
    lines += ["", "## Settings that differ", ""]
    lines.append(markdown_table(settings) if len(settings) else "The runs share every setting.")
    lines += ["", "## Results", "", markdown_table(results_table(runs)), "", "## Findings", ""]
    findings = findings_table(runs)
    lines.append(markdown_table(findings) if len(findings) else "No run has a finding.")
    lines += ["", "## Key figures", ""]
    for i, run in enumerate(runs):
        lines += [f"### {i + 1}. {run.label}", ""]
        lines += [f"![{figure}]({figure_link(run, figure)})\n" for figure in run.figures] or ["(no figures)", ""]
    return "\n".join(lines) + "\n"


def _column(index: int, run: RunSummary) -> str:
    return f"{index + 1}. {run.label.split(' (')[0]}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _data_uri(run: RunSummary, figure: str) -> str:
    return "data:image/png;base64," + base64.b64encode((run.run_dir / figure).read_bytes()).decode("ascii")


def _html(markdown_text: str) -> str:
    body = markdown.markdown(markdown_text, extensions=["tables"])
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gendiag comparison</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; compare needs finished run folders (run.json, config.yaml, "
                                "findings.json, sections.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: corrupt JSON ({error})") from error


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; compare needs finished run folders (run.json, config.yaml, "
                                "findings.json, sections.json)")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data

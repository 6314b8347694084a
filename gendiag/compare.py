"""Several finished runs side by side in one report: the settings that differ, the headline results and the
samples' metrics (each row's best run marked, and where two metrics favour different runs, said so), which
finding codes each run has, the curves of all runs overlaid on one chart per quantity (loss, loss by t, gradient
norm), the runs' samples side by side, and each run's key figures. Run folders of `gendiag run` and of a
Monitor on a user's own loop both compare (run.json and config.yaml are read where present).
`gendiag compare RUN_DIR... [--out DIR]`."""

from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import markdown
import pandas as pd
import yaml

from gendiag.figures import DPI
from gendiag.figures.compare import OVERLAYS, overlay_figure
from gendiag.findings import SEVERITY_RANK, Finding
from gendiag.io import atomic_write_text
from gendiag.report import load_run
from gendiag.report.html import STYLE
from gendiag.report.markdown import markdown_table
from gendiag.rundir import create_run_dir
from gendiag.sinks.scalars import ScalarTable

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
    metrics: pd.DataFrame | None = None  # metrics.csv (step, tag, value), where the folder has one
    samples: dict[str, float] | None = None  # the samples-against-data numbers of probe_data.json
    samples_figure: str | None = None


@dataclass
class Comparison:
    runs: list[RunSummary]
    markdown_path: Path
    html_path: Path


def load_summary(run_dir: str | Path) -> RunSummary:
    """Read a finished run folder: findings.json and sections.json (required), and where present run.json and
    config.yaml (written by `gendiag run`), metrics.csv and probe_data.json (written by every Monitor)."""
    run_dir = Path(run_dir)
    report = load_run(run_dir)
    case_run = (run_dir / "run.json").is_file() or (run_dir / "config.yaml").is_file()
    header = _read_json(run_dir / "run.json") if case_run else {}
    config = _read_yaml(run_dir / "config.yaml") if case_run else {}
    settings = {f"{section}.{key}": value for section in SETTING_SECTIONS
                for key, value in (config.get(section) or {}).items()}
    label = (f"{header.get('case', run_dir.parent.name)} ({header.get('profile', 'default')}, {run_dir.name})"
             if case_run else run_dir.name)
    figures = [f for section in report.sections for f in section.figures if (run_dir / f).is_file()]
    probe_data = _read_json(run_dir / "probe_data.json") if (run_dir / "probe_data.json").is_file() else {}
    samples = probe_data.get("samples_vs_data") or None
    samples_figures = [f for f in figures if Path(f).stem == "samples_vs_data"] + [
        f for f in figures if "sample" in Path(f).stem and Path(f).stem != "samples_vs_data"]
    metrics = ScalarTable.load(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else None
    return RunSummary(run_dir=run_dir, label=label, results=dict(header.get("results") or {}), settings=settings,
                      findings=report.findings, figures=figures[:FIGURES_PER_RUN], metrics=metrics,
                      samples=samples if isinstance(samples, dict) and "w2" in samples else None,
                      samples_figure=samples_figures[0] if samples_figures else None)


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path | None = None,
                 root: str | Path = "reports") -> Comparison:
    """Write report.md and report.html comparing `run_dirs` into `out_dir` (default: a fresh ROOT/compare/...)."""
    if len(run_dirs) < 2:
        raise ValueError(f"compare: give at least two run folders, got {len(run_dirs)}")
    runs = [load_summary(path) for path in run_dirs]
    out = Path(out_dir) if out_dir is not None else create_run_dir(root, "compare")
    out.mkdir(parents=True, exist_ok=True)
    overlays = write_overlays(runs, out / "figures")
    relative = markdown_document(runs, lambda path: Path(os.path.relpath(path, out)).as_posix(), overlays)
    embedded = markdown_document(runs, _data_uri, overlays)
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


def sample_metrics(run: RunSummary) -> dict[str, float]:
    """The numbers that say how close a run's samples are to its data, from probe_data.json, and its final loss.
    The energy distance stands beside W2: W2 squares distances, so a few far samples can outweigh a diffuse cloud
    that the energy distance (and the eye) ranks worse; where the two favour different runs the report says so."""
    metrics: dict[str, float] = {}
    gap = run.samples or {}
    if gap:
        metrics["W2 / its floor"] = gap["w2"] / gap["w2_floor"] if gap.get("w2_floor") else math.inf
        if gap.get("energy_over_spread") is not None:  # runs saved before the energy distance lack it
            metrics["energy distance (data spreads)"] = gap["energy_over_spread"]
        metrics["coverage / its floor"] = (gap["coverage"] / gap["coverage_floor"] if gap.get("coverage_floor")
                                           else gap["coverage"])
        metrics["std ratio (samples / data)"] = gap["std_ratio"]
        metrics["mean offset (data spreads)"] = gap["mean_offset"]
    final = run.results.get("final_loss")
    if final is None and run.metrics is not None:
        losses = run.metrics[run.metrics["tag"] == "loss/train"]["value"]
        final = float(losses.tail(max(1, len(losses) // 10)).mean()) if len(losses) else None
    if final is not None:
        metrics["final loss (mean of the last tenth)" if "final_loss" not in run.results else "final loss"] = final
    return metrics


def metrics_table(runs: list[RunSummary]) -> tuple[pd.DataFrame, list[str]]:
    """The runs' sample metrics (one row each, one column per run), each row's best run in bold where the runs
    differ by more than `NOTABLE` (relative), and the sentences that say where two metrics favour different runs."""
    values = [sample_metrics(run) for run in runs]
    keys = list(dict.fromkeys(key for row in values for key in row))
    best: dict[str, int] = {}
    cells: dict[str, list[str]] = {_column(i, run): [] for i, run in enumerate(runs)}
    for key in keys:
        present = {i: row[key] for i, row in enumerate(values) if key in row and math.isfinite(row[key])}
        scores = {i: METRIC_BADNESS[_metric_kind(key)](v) for i, v in present.items()}
        notable = len(scores) > 1 and _differ(list(scores.values()))
        if notable:
            best[key] = min(scores, key=scores.get)
        for i, run in enumerate(runs):
            text = f"{values[i][key]:.4g}" if key in values[i] else "not measured"
            cells[_column(i, run)].append(f"**{text}**" if best.get(key) == i else text)
    frame = pd.DataFrame(cells, index=pd.Index(keys, name="metric (best run in bold)"))
    return frame, _disagreements(runs, best)


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


def write_overlays(runs: list[RunSummary], folder: Path) -> list[tuple[str, Path]]:
    """One chart per quantity with every run's curve on it (where at least one run logged it): (title, path)."""
    written = []
    for name, overlay in OVERLAYS.items():
        curves = {_column(i, run): run.metrics for i, run in enumerate(runs) if run.metrics is not None}
        figure = overlay_figure(overlay, curves)
        if figure is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=DPI)
        written.append((overlay.title, path))
    return written


def markdown_document(runs: list[RunSummary], figure_link: Callable[[Path], str],
                      overlays: list[tuple[str, Path]] = ()) -> str:
    """The comparison as markdown; `figure_link(path)` gives each figure's address."""
    lines = ["# gendiag comparison", "", "Runs (columns below are numbered in this order):", ""]
    lines += [f"{i + 1}. {run.label}: `{run.run_dir}`" for i, run in enumerate(runs)]
    settings = settings_table(runs)
    lines += ["", "## Settings that differ", ""]
    lines.append(markdown_table(settings) if len(settings) else "The runs share every setting.")
    results = results_table(runs)
    lines += ["", "## Results", "", markdown_table(results) if len(results) else "No run reports headline results."]
    metrics, disagreements = metrics_table(runs)
    if len(metrics):
        lines += ["", "## Samples and loss: which run is ahead", "", markdown_table(metrics), ""]
        lines += ([f"- **The metrics disagree**: {sentence}" for sentence in disagreements]
                  or ["The metrics that single out a run agree on it."])
    lines += ["", "## Findings", ""]
    findings = findings_table(runs)
    lines.append(markdown_table(findings) if len(findings) else "No run has a finding.")
    if overlays:
        lines += ["", "## Curves, all runs on one chart", ""]
        lines += [f"![{title}]({figure_link(path)})\n" for title, path in overlays]
    with_samples = [(i, run) for i, run in enumerate(runs) if run.samples_figure is not None]
    if with_samples:
        lines += ["", "## Samples side by side", "", "| " + " | ".join(_column(i, run) for i, run in with_samples)
                  + " |", "|" + "---|" * len(with_samples),
                  "| " + " | ".join(f"![samples]({figure_link(run.run_dir / run.samples_figure)})"
                                    for _, run in with_samples) + " |"]
    lines += ["", "## Key figures", ""]
    for i, run in enumerate(runs):
        lines += [f"### {i + 1}. {run.label}", ""]
        lines += ([f"![{figure}]({figure_link(run.run_dir / figure)})\n" for figure in run.figures]
                  or ["(no figures)", ""])
    return "\n".join(lines) + "\n"


def _column(index: int, run: RunSummary) -> str:
    return f"{index + 1}. {run.label.split(' (')[0]}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _metric_kind(key: str) -> str:
    if key.startswith("coverage"):
        return "higher"
    if key.startswith("std ratio"):
        return "near one"
    return "lower"


METRIC_BADNESS: dict[str, Callable[[float], float]] = {
    "lower": lambda v: v, "higher": lambda v: -v, "near one": lambda v: abs(math.log(v)) if v > 0 else math.inf}
NOTABLE = 0.10  # a metric singles out a run where the runs' values differ by more than this (relative)


def _differ(scores: list[float]) -> bool:
    low, high = min(scores), max(scores)
    return high - low > NOTABLE * max(abs(low), abs(high), 1e-12)


def _disagreements(runs: list[RunSummary], best: dict[str, int]) -> list[str]:
    """One sentence per pair of sample metrics (the final loss left out: it is no sample metric) that single out
    different runs."""
    sample_keys = [key for key in best if not key.startswith("final loss")]
    sentences = []
    for a, key_a in enumerate(sample_keys):
        for key_b in sample_keys[a + 1:]:
            if best[key_a] != best[key_b]:
                sentences.append(f"{key_a} favours run {best[key_a] + 1} ({runs[best[key_a]].label}), {key_b} favours "
                                 f"run {best[key_b] + 1} ({runs[best[key_b]].label}); look at the samples side by "
                                 "side before trusting either.")
    return sentences


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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

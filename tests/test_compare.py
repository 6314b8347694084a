"""`gendiag compare`: runs side by side — the settings that differ, results, finding codes, key figures."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import yaml

from gendiag.cli import main
from gendiag.compare import compare_runs, findings_table, load_summary, settings_table
from gendiag.findings import Finding
from gendiag.report.section import ProbeSection
from gendiag.report import render_run


def make_run(root: Path, name: str, lr: float, codes: dict[str, str], loss: float) -> Path:
    """A finished run folder written by the real report writer, with one figure and the given findings."""
    run_dir = root / name
    (run_dir / "figures").mkdir(parents=True)
    figure, axis = plt.subplots(figsize=(2, 2))
    axis.plot([0, 1], [loss, loss / 2])
    figure.savefig(run_dir / "figures" / "summary.png")
    plt.close(figure)
    header = {"case": name, "profile": "default", "results": {"final_loss": loss, "cos_target": 0.25}}
    (run_dir / "run.json").write_text(json.dumps(header))
    config = {"name": name, "data": {"mode": "binary", "size": 64}, "training": {"lr": lr, "steps": 200}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    findings = [Finding(code=code, severity=severity, title=code, message=code) for code, severity in codes.items()]
    render_run(run_dir, findings, [ProbeSection(title="Summary", figures=["figures/summary.png"])], header=header)
    return run_dir


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    buggy = make_run(tmp_path, "buggy", 1e-6, {"target-explodes": "critical", "source-not-noise": "critical"}, 1.5e6)
    fixed = make_run(tmp_path, "fixed", 1e-3, {"source-not-noise": "warning"}, 312.0)
    return buggy, fixed


def test_settings_table_keeps_only_what_differs(two_runs: tuple[Path, Path]) -> None:
    runs = [load_summary(path) for path in two_runs]
    table = settings_table(runs)
    assert list(table.index) == ["training.lr"]
    assert list(table.iloc[0]) == ["1e-06", "0.001"]


def test_findings_table_marks_which_run_has_each_code(two_runs: tuple[Path, Path]) -> None:
    table = findings_table([load_summary(path) for path in two_runs])
    assert list(table.index) == ["source-not-noise", "target-explodes"]
    assert table.loc["target-explodes"].tolist() == ["critical", "—"]
    assert table.loc["source-not-noise"].tolist() == ["critical", "warning"]


def test_report_files_link_and_embed_the_figures(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "comparison"
    comparison = compare_runs(list(two_runs), out_dir=out)
    text = comparison.markdown_path.read_text()
    assert "1.5e+06" in text and "312" in text
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 2 and all((out / link).is_file() for link in links)
    page = comparison.html_path.read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page


def test_cli_compare_writes_the_report(two_runs: tuple[Path, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["compare", *map(str, two_runs), "--out", str(out)]) == 0
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_one_run_or_a_missing_folder_is_a_clear_error(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two run folders"):
        compare_runs([two_runs[0]], out_dir=tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="absent"):
        compare_runs([two_runs[0], tmp_path / "absent"], out_dir=tmp_path / "y")
    assert main(["compare", str(two_runs[0]), str(tmp_path / "absent")]) == 1

"""`gendiag compare` on two runs of a user's own loop (Monitor folders: no run.json, no config.yaml): the loss, the
loss by t and the gradient norm of both runs overlaid on one chart each, with every logged point; the samples side
by side; the sample metrics with each row's best run in bold; findings as a codes x runs table; and where two
metrics favour different runs, a sentence that says so."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gendiag.cli import main
from gendiag.compare import RunSummary, compare_runs, load_summary, metrics_table
from gendiag.figures.compare import OVERLAYS, _curve
from tests.test_tb_contents import STEPS, train_user_flow


@pytest.fixture(scope="module")
def two_user_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    train_user_flow(root / "lr2e-3", lr=2e-3)
    train_user_flow(root / "lr0", lr=0.0)
    return root / "lr2e-3", root / "lr0"


@pytest.mark.slow
def test_monitor_folders_compare_with_overlaid_curves_and_samples_side_by_side(
        two_user_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, two_user_runs), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    for name in OVERLAYS:
        assert (out / "figures" / f"{name}.png").is_file(), name
        assert f"](figures/{name}.png)" in text
    runs = [load_summary(path) for path in two_user_runs]
    for run in runs:  # every point each run logged is on the chart
        steps, _ = _curve(OVERLAYS["loss"], run.metrics)
        assert len(steps) == STEPS
        assert len(_curve(OVERLAYS["loss_by_t"], run.metrics)[0]) == 10
    side_by_side = text.split("## Samples side by side")[1].split("##")[0]
    assert side_by_side.count("samples_vs_data.png") == 2
    findings = text.split("## Findings")[1].split("##")[0]
    assert "params-stalled" in findings  # the run at lr 0 stalls, the other does not
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 + len(OVERLAYS)


@pytest.mark.slow
def test_the_trained_run_is_marked_ahead_on_its_samples(two_user_runs: tuple[Path, Path]) -> None:
    runs = [load_summary(path) for path in two_user_runs]
    table, _ = metrics_table(runs)
    column = table.columns[0]
    assert table.loc["W2 / its floor", column].startswith("**")  # the trained run's samples are closer
    assert table.loc["final loss (mean of the last tenth)", column].startswith("**")


def test_metrics_that_favour_different_runs_are_called_out(tmp_path: Path) -> None:
    """The issue's case (ddpm_swissroll against _fixed): W2 favours the run whose samples are more diffuse; the
    std ratio favours the other. The table marks each row's best run and a sentence names the disagreement."""
    def run(name: str, w2: float, std_ratio: float) -> RunSummary:
        samples = {"w2": w2, "w2_floor": 0.07, "coverage": 0.8, "coverage_floor": 0.9, "std_ratio": std_ratio,
                   "mean_offset": 0.05}
        return RunSummary(run_dir=tmp_path / name, label=name, results={}, settings={}, findings=[], figures=[],
                          metrics=pd.DataFrame(columns=["step", "tag", "value"]), samples=samples)

    table, sentences = metrics_table([run("swissroll", 0.127, 1.02), run("swissroll_fixed", 0.112, 1.35)])
    assert table.loc["W2 / its floor"].tolist() == ["1.814", "**1.6**"]
    assert table.loc["std ratio (samples / data)"].tolist() == ["**1.02**", "1.35"]
    assert table.loc["coverage / its floor"].tolist() == ["0.8889", "0.8889"]  # equal: nobody marked
    assert len(sentences) == 1
    assert "W2 / its floor favours run 2 (swissroll_fixed)" in sentences[0]
    assert "std ratio (samples / data) favours run 1 (swissroll)" in sentences[0]


@pytest.mark.slow
def test_compare_writes_into_the_folder_given(two_user_runs: tuple[Path, Path], tmp_path: Path) -> None:
    comparison = compare_runs(list(two_user_runs), out_dir=tmp_path / "given")
    assert comparison.markdown_path.parent == tmp_path / "given"
    assert [run.label for run in comparison.runs] == ["lr2e-3", "lr0"]

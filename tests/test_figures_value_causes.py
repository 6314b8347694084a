"""Issue 22, "every finding code maps to one measurement, one rule and one figure": the figures of the findings on
the values a run sees. On each broken loop the finding names its figure and the figure is in the run folder; on the
healthy twin no such file is written (issue 23: a healthy run's report costs what it did).

- `vae-decoder-output-squashed`, `bce-target-out-of-range`: the user's VAE loop of tests/test_cause_codes_vae.py.
- `data-nonfinite`, `outputs-nonfinite`, `samples-nonfinite`: a flow-matching loop written here as a user would, whose
  data set has missing values (NaN) from one batch on.
- `train-sample-input-mismatch`, `ar-samples-identical` (autoregressive probe): the user's PixelCNN of
  tests/test_ar_pixelcnn.py with a sampler writing probabilities back, and the GRU of tests/test_ar_tokens.py decoded
  greedily.
Each figure function is also given numbers directly and its axes hold the quantity, the threshold and the healthy
level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import gendiag
from gendiag.figures.autoregressive import distinct_samples, sampler_values
from gendiag.figures.observed import nonfinite_figure
from gendiag.figures.vae_output import bce_figure, squashed_figure
from gendiag.quantities.observed import BUCKETS, StepCounts
from gendiag.rules.codes import CODES
from gendiag.rules.thresholds import AR_DISTINCT_RATIO, AR_OFF_LEVEL_SHARE, OBSERVED_SAMPLES_CRITICAL_SHARE
from tests.test_ar_pixelcnn import train as train_pixelcnn
from tests.test_ar_tokens import GRULanguageModel
from tests.test_ar_tokens import train as train_tokens
from tests.test_cause_codes_vae import train_vae

OURS = {"vae-decoder-output-squashed": "vae_output_squashed", "bce-target-out-of-range": "vae_bce_targets",
        "data-nonfinite": "observed_nonfinite", "outputs-nonfinite": "observed_nonfinite",
        "samples-nonfinite": "observed_nonfinite", "ar-samples-identical": "autoregressive_distinct_samples"}


def drawn(run_dir: Path) -> set[str]:
    """The figures in the run folder, by name."""
    return {path.stem for path in (run_dir / "figures").glob("*.png")}


def test_each_code_of_ours_maps_to_a_figure() -> None:
    for entry in CODES:
        if entry.code in OURS or entry.rule.startswith("gendiag.rules.autoregressive:sample"):
            assert entry.figure is not None, entry.code


# -- VAE decoder output --------------------------------------------------------------------------------------

def test_a_sigmoid_applied_twice_draws_the_output_histogram(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    finding = train_vae(run_dir, 0, out="sigmoid-twice", steps=150)["vae-decoder-output-squashed"]
    assert finding.figure == "figures/vae_output_squashed.png" and (run_dir / finding.figure).is_file()
    assert "vae_bce_targets" not in drawn(run_dir)


def test_bce_targets_outside_unit_range_draw_the_targets_and_the_loss(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    finding = train_vae(run_dir, 0, out="logits", scale="symmetric", steps=150)["bce-target-out-of-range"]
    assert finding.figure == "figures/vae_bce_targets.png" and (run_dir / finding.figure).is_file()
    assert "vae_output_squashed" not in drawn(run_dir)


@pytest.mark.parametrize("out, scale", [("sigmoid", "unit"), ("logits", "unit")])
def test_healthy_vaes_draw_neither_figure(tmp_path: Path, out: str, scale: str) -> None:
    run_dir = tmp_path / "run"
    found = train_vae(run_dir, 0, out=out, scale=scale, steps=150)
    assert not {"vae-decoder-output-squashed", "bce-target-out-of-range"} & set(found)
    assert not {"vae_output_squashed", "vae_bce_targets"} & drawn(run_dir)


def test_vae_figures_hold_the_band_the_values_and_the_loss_against_zero() -> None:
    samples = np.full(600, 0.6)
    data = np.r_[np.zeros(300), np.ones(100), [np.nan]]
    figure = squashed_figure(samples, data)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("sigmoid applied twice") for label in labels) and "data values" in labels
    assert len(labels) == 3
    assert "100% of the data values outside" in figure.axes[0].get_title()
    steps, loss = np.arange(0, 100, 10), np.linspace(40.0, -12.0, 10)
    figure = bce_figure(2 * data - 1, steps, loss, "recon", (90, -12.0))
    curve, lowest, floor = figure.axes[1].get_lines()
    assert np.array_equal(curve.get_ydata(), loss) and list(lowest.get_xydata()[0]) == [90, -12.0]
    assert list(floor.get_ydata()) == [0.0, 0.0]
    assert "75% outside [0, 1]" in figure.axes[0].get_title()


# -- values observed: NaN or infinite rows -------------------------------------------------------------------

def ring(n: int, gen: torch.Generator) -> torch.Tensor:
    """The user's data: points on a circle of radius 3."""
    angle = torch.rand(n, generator=gen) * 2 * torch.pi
    return 3 * torch.stack([angle.cos(), angle.sin()], dim=1) + 0.05 * torch.randn(n, 2, generator=gen)


class Velocity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


def flow_run(run_dir: Path, missing_from: int | None, steps: int = 40) -> tuple[dict, StepCounts | None]:
    """The user's flow matching on a ring; from batch `missing_from` on every eighth row of their data set has a
    missing value (NaN): the loss, then the weights, the network's outputs and the samples turn NaN. Returns the
    findings by code and the record of the data's rows over the steps."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = Velocity()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mon = gendiag.Monitor(run_dir, task="flow", probes=["observed-values", "sampling_calls"], check_every=None)
    mon.watch(model, optimizer=opt)
    for step in range(1, steps + 1):
        x1 = ring(128, gen)
        if missing_from is not None and step >= missing_from:
            x1[::8, 0] = float("nan")
        x0 = torch.randn(128, 2, generator=gen)
        t = torch.rand(128, generator=gen)
        mon.observe_data(x1)
        loss = ((model((1 - t[:, None]) * x0 + t[:, None] * x1, t) - (x1 - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(step, loss)
    with torch.no_grad(), mon.sampling():
        x = torch.randn(256, 2, generator=gen)
        for i in range(10):
            x = x + model(x, torch.full((256,), i / 10)) / 10
    mon.observe_samples(x)
    found = {finding.code: finding for finding in mon.finish().findings}
    return found, mon.ctx.observed.by_step.get("data")


def test_nan_rows_draw_the_nonfinite_rows_over_the_steps(tmp_path: Path) -> None:
    found, data = flow_run(tmp_path / "run", missing_from=20)
    for code in ("data-nonfinite", "outputs-nonfinite", "samples-nonfinite"):
        assert found[code].figure == "figures/observed_nonfinite.png", code
    assert (tmp_path / "run" / "figures" / "observed_nonfinite.png").is_file()
    steps, rows, bad = data.series()  # observed before mon.step(20): counted at step 19
    assert list(steps) == list(range(40)) and set(rows) == {128}
    assert not bad[:19].any() and set(bad[19:]) == {16}


def test_a_healthy_run_draws_no_nonfinite_figure(tmp_path: Path) -> None:
    found, _ = flow_run(tmp_path / "run", missing_from=None)
    assert not set(found) & {"data-nonfinite", "outputs-nonfinite", "samples-nonfinite"}
    assert "observed_nonfinite" not in drawn(tmp_path / "run")


def test_step_counts_stay_bounded_and_keep_every_row() -> None:
    counts = StepCounts()
    for step in range(10_000):
        counts.add(step, 4, int(step >= 7_000))
    steps, rows, bad = counts.series()
    assert len(steps) <= BUCKETS and rows.sum() == 40_000 and bad.sum() == 3_000
    assert not bad[steps + counts.width <= 7_000].any() and bad[steps >= 7_000].all()


def test_nonfinite_figure_holds_each_place_against_zero_and_the_samples_threshold() -> None:
    steps, rows, bad = np.array([0, 10, 20]), np.array([64, 64, 64]), np.array([0, 8, 64])
    figure = nonfinite_figure({"data": (steps, rows, bad, 10), "samples": (steps[2:], rows[2:], bad[2:], 1)})
    data, samples, zero = figure.axes[0].get_lines()
    assert list(data.get_ydata()) == [0, 8, 64] and data.get_label() == "data (per 10 steps)"
    assert list(samples.get_ydata()) == [64] and list(zero.get_ydata()) == [0.0, 0.0]
    shares = figure.axes[1].get_lines()
    assert list(shares[0].get_ydata()) == [0.0, 0.125, 1.0]
    assert list(shares[-1].get_ydata()) == [OBSERVED_SAMPLES_CRITICAL_SHARE] * 2


# -- autoregressive sampler ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_sampler_writing_probabilities_back_draws_both_figures(tmp_path: Path) -> None:
    findings = {f["code"]: f for f in train_pixelcnn(tmp_path, 0, sampler="probability", steps=40)}
    for code, name in (("train-sample-input-mismatch", "autoregressive_sampler_values"),
                       ("ar-samples-identical", "autoregressive_distinct_samples")):
        assert findings[code]["figure"] == f"figures/{name}.png" and (tmp_path / findings[code]["figure"]).is_file()


@pytest.mark.slow
def test_a_drawing_pixelcnn_sampler_draws_neither(tmp_path: Path) -> None:
    codes = {f["code"] for f in train_pixelcnn(tmp_path, 0, steps=40)}
    assert not codes & {"train-sample-input-mismatch", "ar-samples-identical"}
    assert not {"autoregressive_sampler_values", "autoregressive_distinct_samples"} & drawn(tmp_path)


@pytest.mark.slow
def test_greedy_decoding_draws_the_distinct_samples_and_sampling_does_not(tmp_path: Path) -> None:
    greedy = {f["code"]: f for f in train_tokens(tmp_path / "greedy", 0, GRULanguageModel(), greedy=True, steps=30)}
    figure = greedy["ar-samples-identical"]["figure"]
    assert figure == "figures/autoregressive_distinct_samples.png" and (tmp_path / "greedy" / figure).is_file()
    drawing = {f["code"] for f in train_tokens(tmp_path / "drawn", 0, GRULanguageModel(), steps=30)}
    assert "ar-samples-identical" not in drawing
    assert "autoregressive_distinct_samples" not in drawn(tmp_path / "drawn")


def test_autoregressive_figures_hold_the_shares_and_their_thresholds() -> None:
    rng = np.random.default_rng(0)
    figure = sampler_values(np.array([0.0, 1.0]), np.array([300, 100]), rng.uniform(0.05, 0.95, 500),
                            rng.uniform(0.2, 0.8, 500), [0.98, 0.97], 1.0)
    runs, samples, threshold = figure.axes[1].get_lines()
    assert list(runs.get_ydata()) == [0.98, 0.97] and list(samples.get_ydata()) == [1.0, 1.0]
    assert list(threshold.get_ydata()) == [AR_OFF_LEVEL_SHARE] * 2
    levels = figure.axes[0].collections[0].get_segments()
    assert [list(segment[1]) for segment in levels] == [[0.0, 0.75], [1.0, 0.25]]
    figure = distinct_samples(64, 1, 64, 16, np.array([1.0]), np.full(10, 1 / 16))
    bars = [patch.get_height() for patch in figure.axes[0].patches]
    assert bars == [1 / 64, 0.25]
    assert list(figure.axes[0].get_lines()[0].get_ydata()) == [AR_DISTINCT_RATIO * 0.25] * 2
    assert [patch.get_height() for patch in figure.axes[1].patches][0] == 1.0

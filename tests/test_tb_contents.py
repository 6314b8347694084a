"""TensorBoard holds what the report plots, with all its points: on loops written as a user writes them (their own
data loader, loop order and call convention, only the public API), every scalar of metrics.csv is in the event
file under the same name with the same steps and values; weights and gradients have histograms over time; the
samples are drawn beside the data at each observation (a scatter for points, image grids for images); findings
are texts at their step."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gendiag

STEPS = 240


class TimeFirstNet(torch.nn.Module):
    """The user's velocity net, called as net(t, x) with t of shape (B, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(3, 48), torch.nn.Tanh(), torch.nn.Linear(48, 48),
                                        torch.nn.Tanh(), torch.nn.Linear(48, 2))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, t], dim=1))


def two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    """The user's data helper: two interleaved half circles, ordered along the arcs."""
    angle = torch.linspace(0, math.pi, n // 2)
    upper = torch.stack([angle.cos(), angle.sin()], 1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], 1)
    return torch.cat([upper, lower]) + 0.05 * torch.randn(n, 2, generator=generator)


def train_user_flow(run_dir: Path, lr: float = 2e-3, steps: int = STEPS) -> gendiag.Monitor:
    """A user's flow-matching loop: a DataLoader over a fixed set, zero_grad first, the optimizer under watch, the
    Monitor counting steps, samples drawn every 80 steps."""
    generator = torch.Generator().manual_seed(3)
    points = two_moons(2048, generator)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(points), batch_size=128, shuffle=True,
                                         generator=generator)
    torch.manual_seed(0)
    net = TimeFirstNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    mon = gendiag.Monitor(run_dir, task="flow")
    mon.watch(net, name="velocity", x_arg=1, t_arg=0, optimizer=opt)
    batches = iter(loader)
    for step in range(steps):
        opt.zero_grad()
        with mon.phase("data"):
            try:
                (x1,) = next(batches)
            except StopIteration:
                batches = iter(loader)
                (x1,) = next(batches)
            x0 = torch.randn(x1.shape, generator=generator)
        mon.observe_data(x1)
        mon.observe_data(x0, role="source")
        with mon.phase("compute"):
            t = torch.rand(len(x1), 1, generator=generator)
            per_sample = (net(t, (1 - t) * x0 + t * x1) - (x1 - x0)).pow(2).sum(1)
            per_sample.mean().backward()
            opt.step()
        mon.step(loss=per_sample.mean(), t=t[:, 0], per_sample_loss=per_sample.detach())
        if (step + 1) % 80 == 0:
            with mon.sampling(), torch.no_grad():
                x = torch.randn(600, 2, generator=generator)
                for k in range(16):
                    x = x + net(torch.full((len(x), 1), k / 16), x) / 16
            mon.observe_samples(x)
    mon.finish()
    return mon


def read_events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0, "histograms": 0,
                                                                   "tensors": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("tb") / "run"
    train_user_flow(run_dir)
    return run_dir


@pytest.mark.slow
def test_every_scalar_of_metrics_csv_is_in_tensorboard_with_all_its_points(user_run: Path) -> None:
    table = pd.read_csv(user_run / "metrics.csv")
    events = read_events(user_run)
    served = set(events.Tags()["scalars"])
    assert set(table["tag"]) == served
    for tag, rows in table.groupby("tag"):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == rows["step"].tolist(), tag
        assert [e.value for e in logged] == pytest.approx(rows["value"].tolist(), rel=1e-6, abs=1e-30), tag
    counts = table.groupby("tag").size()
    # the per-step series hold a point per step (the step clock's first interval has no "other"/"total")
    for tag in ("loss/train", "loss/running_mean", "grad/global_norm", "grad/norm/velocity.body.0.weight",
                "time/data", "time/compute"):
        assert counts[tag] == STEPS, tag
    assert counts["time/total"] == STEPS - 1
    # per-measurement series: an update measured every 20 readings, the loss by t per closed chunk of 64 steps
    assert counts["grad/update_ratio"] >= STEPS // 20 - 1
    assert counts["loss_by_t/mean/t0.0-0.1"] == math.ceil(STEPS / 64)
    assert not any(tag.startswith("time/ms/") for tag in served)


def test_custom_scalar_charts_name_tags_that_hold_curves(user_run: Path) -> None:
    import re

    from tensorboard.plugins.custom_scalar import layout_pb2

    events = read_events(user_run)
    [config] = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout()
    layout.ParseFromString(config.tensor_proto.string_val[0])
    served = events.Tags()["scalars"]
    charts = {chart.title: [tag for pattern in chart.multiline.tag for tag in served if re.fullmatch(pattern, tag)]
              for category in layout.category for chart in category.chart}
    for title in ("gradient norms", "loss with running mean and spread", "mean loss per t bin",
                  "seconds per step by phase"):
        assert charts[title], title
        assert all(len(events.Scalars(tag)) > 1 for tag in charts[title]), title
    assert "time/data" in charts["seconds per step by phase"]
    assert not any(tag.startswith("time/share/") for tag in charts["seconds per step by phase"])


def test_histograms_of_weights_and_gradients_over_time(user_run: Path) -> None:
    events = read_events(user_run)
    weights = [e.step for e in events.Histograms("weights/velocity.body.0.weight")]
    grads = [e.step for e in events.Histograms("grads/velocity.body.0.weight")]
    assert weights[:3] == [1, 100, 200] and weights[-1] == STEPS
    # read in the optimizer's pre-hook after the weights' turn, i.e. at the next step, with the gradients it uses
    assert grads == [2, 101, 201]


def test_samples_are_drawn_beside_the_data_at_each_observation(user_run: Path) -> None:
    events = read_events(user_run)
    assert [e.step for e in events.Images("samples/over_data")] == [80, 160, 240]
    assert "samples_vs_data" in [p.stem for p in (user_run / "figures").iterdir()]


@pytest.mark.slow
def test_findings_are_texts_at_their_step(tmp_path: Path) -> None:
    """A learning rate of zero leaves the weights where they started: `params-stalled` is in TensorBoard as its own
    text (at the last step: findings made at the end carry no earlier step) and in the summary text."""
    mon = train_user_flow(tmp_path / "run", lr=0.0, steps=60)
    codes = {f.code for f in mon.finish().findings}
    assert "params-stalled" in codes
    events = read_events(tmp_path / "run")
    [stalled] = events.Tensors("findings/params-stalled/text_summary")
    assert stalled.step == 60
    assert b"params-stalled" in stalled.tensor_proto.string_val[0]
    [summary] = events.Tensors("findings/text_summary")
    assert summary.step == 60 and b"params-stalled" in summary.tensor_proto.string_val[0]


def test_image_samples_are_grids_beside_the_data(tmp_path: Path) -> None:
    """A user's loop on 16x16 images (bars at random rows): the samples figure and TensorBoard's snapshot show
    image grids of the samples beside the data, with no fact given."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)

    def bars(n: int) -> torch.Tensor:
        images = torch.zeros(n, 1, 16, 16)
        rows = torch.randint(0, 14, (n,), generator=generator)
        for i, row in enumerate(rows.tolist()):
            images[i, 0, row:row + 3] = 1.0
        return images

    with gendiag.Monitor(tmp_path / "run", task="generic") as mon:
        for step in range(1, 31):
            mon.observe_data(bars(64))
            mon.step(step, loss=1.0 / step)
        mon.observe_samples(bars(100).flip(-1).transpose(-1, -2) + 0.1 * torch.rand(100, 1, 16, 16,
                                                                                     generator=generator))
    events = read_events(tmp_path / "run")
    [snapshot] = events.Images("samples/over_data")
    assert snapshot.step == 30 and snapshot.width > snapshot.height
    with Image.open(tmp_path / "run" / "figures" / "samples_vs_data.png") as figure:
        width, height = figure.size
    assert width > 2.5 * height  # three panels: samples, data, distances


def test_headline_figures_are_scalars_in_both_sinks_beside_the_hparams(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path / "run", probes=[]) as mon:
        for step in range(1, 6):
            mon.step(step, loss=1.0 / step)
        mon.log_hparams({"lr": 1e-3, "layers": [64, 64]}, {"result/w2": 0.25})
    table = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert table[table["tag"] == "result/w2"][["step", "value"]].values.tolist() == [[5, 0.25]]
    events = read_events(tmp_path / "run")
    assert [(e.step, e.value) for e in events.Scalars("result/w2")] == [(5, 0.25)]
    assert "_hparams_/experiment" in events.summary_metadata

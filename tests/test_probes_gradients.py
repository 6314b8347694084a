"""The gradients probe: `params-stalled` fires on a learning rate far too small and on weights that never change,
stays silent on healthy and on diverged training; the probe leaves training bit-for-bit as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gendiag
from gendiag.rules.gradients import HEALTHY_RATIO
from reference_models.nets import VelocityMLP
from tests.loops import FlowSetup, codes, moons, train_flow


def stalled(report):
    return [f for f in report.findings if f.code == "params-stalled"]


def gradient_data(run_dir: Path) -> dict:
    return json.loads((run_dir / "probe_data.json").read_text())["gradients"]


def test_healthy_adam_is_silent_and_its_ratio_is_in_the_healthy_range(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(steps=120), probes=["gradients"], sample=False, figures="all")
    assert not stalled(report)
    data = gradient_data(tmp_path)
    assert HEALTHY_RATIO[0] < data["update_ratio_median"] < HEALTHY_RATIO[1]
    assert data["zero_update_samples"] == 0
    assert data["update_samples"] == 5  # armed every 20 steps; the arming at step 120 has no next step
    assert data["tensors"] == 6 and data["grad_norm_median"] > 0
    section = next(s for s in report.sections if s.title == "Gradients and updates")
    assert (tmp_path / section.figures[0]).is_file() and len(section.table) == 6
    tags = set(pd.read_csv(tmp_path / "metrics.csv")["tag"])
    assert {"grad/global_norm", "grad/update_ratio", "grad/noise_to_signal"} <= tags
    assert "grad/norm/model.net.0.weight" in tags
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0})
    histograms = events.Reload().Tags()["histograms"]
    assert {"weights/model.net.0.weight", "grads/model.net.0.weight"} <= set(histograms)
    assert [e.step for e in events.Histograms("weights/model.net.0.weight")] == [1, 100, 120]


def test_learning_rate_far_too_small_is_stalled(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(steps=120, lr=1e-6), probes=["gradients"], sample=False)
    [finding] = stalled(report)
    assert finding.severity == "warning" and finding.figure == "figures/gradients.png"
    assert finding.evidence["update_ratio_median"] < 1e-4
    assert finding.evidence["movement_over_run"] < 0.1
    assert set(finding.evidence["update_ratio_by_tensor"]) >= {"model.net.0.weight", "model.net.4.bias"}


def test_weights_that_never_change_are_critical(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(steps=100, lr=0.0), probes=["gradients"], sample=False)
    [finding] = stalled(report)
    assert finding.severity == "critical"
    assert finding.evidence["zero_update_samples"] == finding.evidence["update_samples"] >= 3


def test_diverged_weights_are_not_called_stalled(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(steps=100, optimizer="sgd", lr=1.0), probes=["gradients"],
                        sample=False)
    assert "params-stalled" not in codes(report, ("critical", "warning", "info"))
    assert gradient_data(tmp_path)["nonfinite_update_samples"] > 0


def train_small(run_dir: Path | None, steps: int = 60) -> tuple[VelocityMLP, list[torch.Tensor]]:
    """A few Adam steps of a small velocity MLP, with or without a Monitor running the gradients probe;
    returns the model and the gradients of the last step."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = VelocityMLP(dim=2, hidden=32, depth=2, time_dim=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mon = None if run_dir is None else gendiag.Monitor(run_dir, task="flow", probes=["gradients"], strict=True)
    if mon is not None:
        mon.watch(model)
    for step in range(1, steps + 1):
        x1, x0, t = moons(64, generator), torch.randn(64, 2, generator=generator), torch.rand(64, generator=generator)
        loss = (model(t[:, None] * x1 + (1 - t[:, None]) * x0, t) - (x1 - x0)).pow(2).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if mon is not None:
            mon.step(step, loss)
    grads = [p.grad.clone() for p in model.parameters()]
    if mon is not None:
        mon.finish()
    return model, grads


def test_probe_leaves_weights_gradients_and_rng_untouched(tmp_path: Path) -> None:
    plain, plain_grads = train_small(None)
    plain_rng = torch.rand(3)
    watched, watched_grads = train_small(tmp_path)
    watched_rng = torch.rand(3)
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(plain_grads, watched_grads))
    assert torch.equal(plain_rng, watched_rng)


def test_parameters_without_gradients_are_tolerated(tmp_path: Path) -> None:
    """An unused parameter (grad None) gets NaN norms, the rest is measured as usual."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Linear(8, 2))
    unused = torch.nn.Linear(3, 3)
    holder = torch.nn.ModuleDict({"used": model, "unused": unused})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    with gendiag.Monitor(tmp_path, task="generic", probes=["gradients"], strict=True) as mon:
        mon.watch(holder, name="net")
        for step in range(1, 81):
            x = torch.randn(32, 2, generator=generator)
            loss = (model(x) - x.flip(1)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            mon.step(step, loss)
    data = gradient_data(tmp_path)
    assert data["tensors"] == 6 and data["update_samples"] == 3  # armed at steps 20, 40, 60 (80 has no next step)
    assert data["update_ratio_by_tensor"]["net.unused.weight"] == 0.0
    assert data["update_ratio_by_tensor"]["net.used.0.weight"] > 0
    assert not stalled(mon.finish())


def test_noise_to_signal_is_near_zero_for_a_full_batch_and_large_for_tiny_batches(tmp_path: Path) -> None:
    def noise(run_dir: Path, batch: int, fixed: bool) -> float:
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
        full = torch.randn(256, 4, generator=generator)
        with gendiag.Monitor(run_dir, task="generic", probes=["gradients"], strict=True) as mon:
            mon.watch(model)
            for step in range(1, 101):
                x = full if fixed else torch.randn(batch, 4, generator=generator)
                loss = (model(x).squeeze(1) - x.sum(1)).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                mon.step(step, loss)
        return gradient_data(run_dir)["noise_to_signal"]

    assert noise(tmp_path / "full", 256, fixed=True) < 0.01
    assert noise(tmp_path / "tiny", 2, fixed=False) > 0.5

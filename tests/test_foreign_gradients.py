"""Gradient figures on loops written the way public scripts write them (nanoGPT, tiny-diffusion, the PyTorch DCGAN
tutorial): the gradients are read where they exist, whatever the order of zero_grad, step and `mon.step`, under
gradient accumulation and GradScaler; a loop that clears them before `mon.step` gets `gradients-not-seen` instead
of zero norms; a GAN whose generator step detaches the fake gets `no-gradient-reaches` naming the generator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import gendiag
from gendiag.probes.gradients import GradientsProbe
from gendiag.report import Report

pytestmark = pytest.mark.filterwarnings("error::UserWarning")

STEPS = 260


# -- what a user's script brings along: a toy data set, a small net, a get_batch helper ---------------------------

def get_batch(generator: torch.Generator, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 2-D regression: y = (sin x0, x0 * x1)."""
    x = torch.randn(batch_size, 2, generator=generator)
    y = torch.stack([torch.sin(x[:, 0]), x[:, 0] * x[:, 1]], dim=1) + 0.05 * torch.randn(batch_size, 2,
                                                                                        generator=generator)
    return x, y


def make_net(width: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))


def grad_norms(model: nn.Module) -> list[float]:
    """Each parameter's gradient norm as the loop sees it (0 for a missing gradient)."""
    return [float(p.grad.norm()) if p.grad is not None else 0.0 for p in model.parameters()]


def gradients_probe(mon: gendiag.Monitor) -> GradientsProbe:
    """The probe itself, to read its full history (metrics.csv holds a thinned sample)."""
    return next(p for p in mon.probes if p.name == "gradients")


def probe_history(mon: gendiag.Monitor) -> dict[int, np.ndarray]:
    history = gradients_probe(mon).readings.norms
    return {step: history.history[i] for i, step in enumerate(history.steps)}


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


def codes(report: Report, code: str) -> list:
    return [f for f in report.findings if f.code == code]


def check_norms_match(mon: gendiag.Monitor, run_dir: Path, seen: dict[int, list[float]]) -> None:
    """Every norm the probe kept, and every gradient norm it logged, equals what the loop saw before opt.step."""
    history = probe_history(mon)
    assert set(history) == set(seen)
    for step, norms in history.items():
        np.testing.assert_allclose(norms, seen[step], rtol=1e-5)
    frame = metrics(run_dir)
    logged = frame[frame["tag"] == "grad/global_norm"]
    assert len(logged) >= 2
    for step, value in zip(logged["step"], logged["value"]):
        assert value == pytest.approx(math.sqrt(sum(n * n for n in seen[step])), rel=1e-5)
    layers = frame[frame["tag"].str.startswith("grad/norm/")]
    assert len(layers) >= 6
    names = [f"model.{name}" for name, _ in make_net().named_parameters()]
    for step, tag, value in zip(layers["step"], layers["tag"], layers["value"]):
        assert value == pytest.approx(seen[step][names.index(tag.removeprefix("grad/norm/"))], rel=1e-5)


# -- nanoGPT / tiny-diffusion order: step, zero_grad, then mon.step ---------------------------------------------------

def train_nanogpt_order(run_dir: Path, *, watch_optimizer: bool, set_to_none: bool = True,
                        ) -> tuple[gendiag.Monitor, dict[int, list[float]]]:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = make_net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mon = gendiag.Monitor(run_dir, probes=["gradients"], strict=True)
    mon.watch(model, optimizer=opt if watch_optimizer else None)
    seen: dict[int, list[float]] = {}
    for it in range(1, STEPS + 1):
        x, y = get_batch(generator)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        seen[it] = grad_norms(model)
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        mon.step(it, loss=loss.item(), lr=opt.param_groups[0]["lr"])
    return mon, seen


def test_nanogpt_order_with_optimizer_reads_the_gradients_the_step_used(tmp_path: Path) -> None:
    mon, seen = train_nanogpt_order(tmp_path, watch_optimizer=True)
    report = mon.finish()
    check_norms_match(mon, tmp_path, seen)
    assert not codes(report, "gradients-not-seen") and not codes(report, "no-gradient-reaches")
    assert not codes(report, "params-stalled")
    network = gradients_probe(mon).summary["networks"]["model"]
    assert network["read_at"] == "optimizer step" and network["optimizer_steps"] == STEPS
    assert 1e-4 < network["update_ratio_median"] < 1e-2
    assert network["update_samples"] == STEPS // 20  # measured in the post-hook of every 20th optimizer step


@pytest.mark.parametrize("set_to_none", [True, False])
def test_nanogpt_order_without_optimizer_logs_no_zero_norms(tmp_path: Path, set_to_none: bool) -> None:
    mon, _ = train_nanogpt_order(tmp_path, watch_optimizer=False, set_to_none=set_to_none)
    report = mon.finish()
    frame = metrics(tmp_path)
    assert not frame["tag"].str.startswith(("grad/global_norm", "grad/norm/")).any()
    [finding] = codes(report, "gradients-not-seen")
    assert finding.severity == "info" and finding.evidence["networks"] == ["model"]
    assert finding.evidence["gradient_arrived"] == {"model": True}
    assert "optimizer=" in finding.suggestion and "clears them before Monitor.step" in finding.message
    assert not codes(report, "no-gradient-reaches") and not codes(report, "params-stalled")
    assert (frame["tag"] == "grad/update_ratio").any()  # the weights are still measured at mon.step


# -- gradient accumulation, set_to_none=False, watch_optimizer on its own -------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("set_to_none", [True, False])
def test_gradient_accumulation_reads_the_accumulated_gradient_once_per_step(tmp_path: Path,
                                                                            set_to_none: bool) -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = make_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    accumulation = 4
    mon = gendiag.Monitor(tmp_path, probes=["gradients"], strict=True)
    mon.watch_optimizer(opt)  # before watch: the order of the two calls does not matter
    mon.watch(model)
    seen: dict[int, list[float]] = {}
    for it in range(1, STEPS + 1):
        for _ in range(accumulation):
            x, y = get_batch(generator, 16)
            loss = nn.functional.mse_loss(model(x), y) / accumulation
            loss.backward()
        seen[it] = grad_norms(model)
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        mon.step(it, loss=loss.item() * accumulation)
    report = mon.finish()
    check_norms_match(mon, tmp_path, seen)
    assert gradients_probe(mon).summary["networks"]["model"]["optimizer_steps"] == STEPS
    assert not {f.code for f in report.findings} & {"gradients-not-seen", "no-gradient-reaches", "params-stalled"}


def test_mon_step_every_micro_batch_gets_one_reading_per_optimizer_step(tmp_path: Path) -> None:
    """A loop that calls mon.step after every micro-batch: the steps between optimizer steps have no reading."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2)
    model = make_net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mon = gendiag.Monitor(tmp_path, probes=["gradients"], strict=True)
    mon.watch(model, optimizer=opt)
    seen: dict[int, list[float]] = {}
    for micro in range(1, 4 * 80 + 1):
        x, y = get_batch(generator, 16)
        (nn.functional.mse_loss(model(x), y) / 4).backward()
        if micro % 4 == 0:
            seen[micro] = grad_norms(model)
            opt.step()
            opt.zero_grad()
        mon.step(micro)
    mon.finish()
    history = probe_history(mon)
    assert sorted(history) == sorted(seen)
    for step, norms in history.items():
        np.testing.assert_allclose(norms, seen[step], rtol=1e-5)


# -- GradScaler ---------------------------------------------------------------------------------------------------

def test_grad_scaler_norms_are_unscaled_and_skipped_steps_have_no_reading(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(3)
    model = make_net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    mon = gendiag.Monitor(tmp_path, probes=["gradients"], strict=True)
    mon.watch(model, optimizer=opt)
    seen: dict[int, list[float]] = {}
    poisoned = {40, 41}
    for it in range(1, STEPS + 1):
        x, y = get_batch(generator)
        loss = nn.functional.mse_loss(model(x), y)
        if it in poisoned:
            loss = loss * math.inf  # an overflow: GradScaler skips the step
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # as for clipping: scaler.step will not unscale again
        if it not in poisoned:
            seen[it] = grad_norms(model)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        mon.step(it, loss=loss.item())
    report = mon.finish()
    assert scaler.get_scale() < 2.0 ** 12  # the scaler did see the overflows
    check_norms_match(mon, tmp_path, seen)
    assert gradients_probe(mon).summary["networks"]["model"]["optimizer_steps"] == STEPS - len(poisoned)
    assert not codes(report, "no-gradient-reaches") and not codes(report, "params-stalled")


# -- GANs ---------------------------------------------------------------------------------------------------------

def ring(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    return torch.stack([angle.cos(), angle.sin()], dim=1) * 2 + 0.05 * torch.randn(n, 2, generator=generator)


def train_gan(run_dir: Path, *, detach_in_g_step: bool = False, zero_grad_after_step: bool = False,
              watch_optimizers: bool = True, steps: int = 240) -> Report:
    """A 2-D GAN written like the PyTorch DCGAN tutorial: D on real and on fake.detach(), then G on D(fake);
    D is not frozen in G's step, so G's loss also leaves gradients in D."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(4)
    net_g = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    net_d = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)
    with gendiag.Monitor(run_dir, task="gan", probes=["gradients"], strict=True) as mon:
        mon.watch(net_g, name="G", t_arg=None, optimizer=opt_g if watch_optimizers else None)
        mon.watch(net_d, name="D", t_arg=None, optimizer=opt_d if watch_optimizers else None)
        for step in range(1, steps + 1):
            real = ring(64, generator)
            fake = net_g(torch.randn(64, 2, generator=generator))
            if not zero_grad_after_step:
                net_d.zero_grad()
            d_real, d_fake = net_d(real), net_d(fake.detach())
            err_d = criterion(d_real, ones) + criterion(d_fake, zeros)
            err_d.backward()
            opt_d.step()
            if zero_grad_after_step:
                opt_d.zero_grad(set_to_none=True)
            else:
                net_g.zero_grad()
            err_g = criterion(net_d(fake.detach() if detach_in_g_step else fake), ones)
            err_g.backward()
            opt_g.step()
            if zero_grad_after_step:
                opt_g.zero_grad(set_to_none=True)
            mon.step(step, loss_d=err_d.item(), loss_g=err_g.item(), d_real=d_real.detach().squeeze(1),
                     d_fake=d_fake.detach().squeeze(1), d_output="logit")
    return mon.finish()


@pytest.mark.parametrize("watch_optimizers", [True, False])
def test_gan_with_detached_generator_step_names_the_generator(tmp_path: Path, watch_optimizers: bool) -> None:
    report = train_gan(tmp_path, detach_in_g_step=True, watch_optimizers=watch_optimizers)
    [finding] = codes(report, "no-gradient-reaches")
    assert finding.severity == "critical" and finding.evidence["network"] == "G"
    assert "No gradient reaches G" == finding.title and "detach" in finding.message
    assert finding.evidence["other_networks_with_gradient"] == ["D"]
    assert finding.evidence["gradient_arrived"] is False
    assert finding.evidence["parameters"] == ["G.0.weight", "G.0.bias", "G.2.weight", "G.2.bias"]
    if watch_optimizers:
        assert finding.evidence["optimizer_steps"] == finding.evidence["readings"] == 240
    assert not codes(report, "params-stalled")  # neither G's (the finding above says it) nor a pooled one


@pytest.mark.slow
@pytest.mark.parametrize("zero_grad_after_step", [False, True])
@pytest.mark.parametrize("watch_optimizers", [True, False])
def test_healthy_gan_is_silent(tmp_path: Path, zero_grad_after_step: bool, watch_optimizers: bool) -> None:
    report = train_gan(tmp_path, zero_grad_after_step=zero_grad_after_step, watch_optimizers=watch_optimizers)
    assert not codes(report, "no-gradient-reaches") and not codes(report, "params-stalled")
    networks = report_networks(tmp_path)
    assert networks["G"]["readings_with_gradient"] > 0 or not watch_optimizers
    assert networks["G"]["gradient_arrived"] and networks["D"]["gradient_arrived"]
    not_seen = codes(report, "gradients-not-seen")
    # read at mon.step after opt_g.zero_grad, G's gradients are gone (D's, left by G's backward, remain)
    assert [f.evidence["networks"] for f in not_seen] == ([["G"]] if zero_grad_after_step and
                                                          not watch_optimizers else [])


def report_networks(run_dir: Path) -> dict:
    return json.loads((run_dir / "probe_data.json").read_text())["gradients"]["networks"]


# -- what must not be called "no gradient" --------------------------------------------------------------------------

def test_diverged_gradients_are_not_missing_gradients(tmp_path: Path) -> None:
    """SGD at a huge learning rate: the gradients become inf and NaN; they were there, so no no-gradient-reaches."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(5)
    model = make_net()
    opt = torch.optim.SGD(model.parameters(), lr=50.0)
    with gendiag.Monitor(tmp_path, probes=["gradients"], strict=True) as mon:
        mon.watch(model, optimizer=opt)
        for it in range(1, 101):
            x, y = get_batch(generator)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(it, loss=loss.item())
    report = mon.finish()
    assert not math.isfinite(loss.item())
    assert not codes(report, "no-gradient-reaches")
    assert report_networks(tmp_path)["model"]["readings_with_gradient"] == 100


def test_an_ema_copy_under_watch_is_not_a_network_without_gradient(tmp_path: Path) -> None:
    """tiny-diffusion style: the EMA model is watched too (its sampling is recorded); it never gets a gradient but
    its weights move, so nothing is said about it."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(6)
    model = make_net()
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.99))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with gendiag.Monitor(tmp_path, probes=["gradients"], strict=True) as mon:
        mon.watch(model)
        mon.watch(ema, name="ema")
        for it in range(1, 201):
            x, y = get_batch(generator)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            ema.update_parameters(model)
            mon.step(it, loss=loss.item())
    report = mon.finish()
    assert not {f.code for f in report.findings} & {"no-gradient-reaches", "params-stalled", "gradients-not-seen"}
    networks = report_networks(tmp_path)
    assert not networks["ema"]["gradient_arrived"] and networks["model"]["readings_with_gradient"] == 200

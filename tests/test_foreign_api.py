"""The Monitor's API on loops written the way users write them: facts checked when the Monitor is built, networks
called with other conventions than `net(x, t)` (x and t concatenated, `(t, x)`, a scalar t in the sampler), a
per-epoch batch index, and a GAN loop that must not raise matplotlib warnings."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gendiag
from gendiag.probes.base import ForwardCall, Probe


def two_blobs(n: int, generator: torch.Generator) -> torch.Tensor:
    centres = torch.tensor([[2.0, 1.0], [-2.0, -1.0]])
    return centres[torch.randint(0, 2, (n,), generator=generator)] + 0.3 * torch.randn(n, 2, generator=generator)


class Recorder(Probe):
    """Keeps every forward call the Monitor records, to compare with what the loop fed the network."""

    name = "test-recorder"
    wants_forward = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[ForwardCall] = []

    def on_forward(self, ctx, call: ForwardCall) -> None:  # noqa: ANN001
        self.calls.append(call)


def codes(run_dir: Path) -> dict[str, dict]:
    return {f["code"]: f for f in json.loads((run_dir / "findings.json").read_text())["findings"]}


# -- facts -------------------------------------------------------------------------------------------------------


def test_a_misspelt_fact_names_the_nearest_one(tmp_path: Path) -> None:
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 100), 0)
    with pytest.raises(ValueError, match="unknown fact 'shedule'; did you mean 'schedule'") as raised:
        gendiag.Monitor(tmp_path / "run", task="diffusion", shedule=abar)
    assert "\n" not in str(raised.value) and "Known facts: schedule" in str(raised.value)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="unknown fact 'stirct'; did you mean 'strict'"):
        gendiag.Monitor(tmp_path / "run", task="diffusion", stirct=True)


def test_a_classifier_without_n_classes_fails_before_training(tmp_path: Path) -> None:
    def classify(images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1).mean(1).gt(0).long()

    with pytest.raises(ValueError, match="fact 'classifier' needs n_classes"):
        gendiag.Monitor(tmp_path, task="gan", classifier=classify)
    with pytest.raises(ValueError, match="fact 'n_classes' must be an int >= 2, got 1"):
        gendiag.Monitor(tmp_path, task="gan", classifier=classify, n_classes=1)
    classify.n_classes = 2  # an attribute serves as well as the fact
    gendiag.Monitor(tmp_path, task="gan", classifier=classify).finish()


@pytest.mark.parametrize("facts, words", [
    ({"image_shape": "28x28"}, "fact 'image_shape' must be (C, H, W) or (H, W) of positive integers, got '28x28'"),
    ({"reference": [[0.0, 1.0], [1.0, 0.0]]}, "fact 'reference' must be a tensor of held-out real samples"),
    ({"modes": torch.zeros(3, 2)}, "modes were given without mode_std"),
    ({"modes": torch.zeros(3, 2), "mode_std": [0.1, 0.2]}, "one per mode (3,), got [0.1, 0.2]"),
    ({"source": "noise"}, "fact 'source' must be callable(n) -> a batch"),
    ({"sampler": "euler"}, "fact 'sampler' must be callable(velocity_fn, x0, steps) -> x1, got str"),
    ({"schedule": torch.linspace(1e-4, 0.02, 50)}, "pass alphas_cumprod = cumprod(1 - betas)"),
])
def test_a_malformed_fact_is_one_line_naming_it(tmp_path: Path, facts: dict, words: str) -> None:
    with pytest.raises(ValueError) as raised:
        gendiag.Monitor(tmp_path, task="flow", **facts)
    message = str(raised.value)
    assert message.startswith("Monitor: ") and "\n" not in message and words in message


# -- call conventions ---------------------------------------------------------------------------------------------


class ConcatField(nn.Module):
    """A velocity network fed one tensor: the state with its time as a last column."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        return self.body(xt)


def concat_flow_loop(run_dir: Path, with_call: bool) -> tuple[gendiag.Monitor, Recorder, list[torch.Tensor]]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    net = ConcatField()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    fed_t = []
    mon = gendiag.Monitor(run_dir, task="flow", probes=["inputs", "velocity"])
    recorder = Recorder()
    mon.probes.append(recorder)
    mon.watch(net, name="net", inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]),
              call=(lambda module, x, t: module(torch.cat([x, t[:, None]], dim=1))) if with_call else None)
    for it in range(120):
        x1 = two_blobs(128, gen)
        x0 = torch.randn(128, 2, generator=gen)
        t = torch.rand(128, generator=gen)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        loss = ((net(torch.cat([xt, t[:, None]], dim=1)) - (x1 - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        fed_t.append(t)
        if it % 20 == 0:
            mon.observe_data(x1)
            mon.observe_data(x0, role="source")
        mon.step(it, loss)
    x = torch.randn(256, 2, generator=gen)
    with mon.sampling(), torch.no_grad():
        for k in range(20):
            x = x + net(torch.cat([x, torch.full((256, 1), k / 20)], dim=1)) / 20
    mon.observe_samples(x)
    mon.finish()
    return mon, recorder, fed_t


def test_a_concatenated_input_is_read_and_run_through_inputs_and_call(tmp_path: Path) -> None:
    _, recorder, fed_t = concat_flow_loop(tmp_path, with_call=True)
    found = codes(tmp_path)
    assert "probe-failed" not in found and "probe-not-run" not in found
    train = [c for c in recorder.calls if c.mode == "train"]
    assert len(train) == 120 and train[-1].x.shape == (64, 2)
    assert torch.isin(train[-1].t, fed_t[-1]).all() and len(set(train[-1].t.tolist())) == 64  # 64 of the rows fed
    sampling = [c for c in recorder.calls if c.mode == "sampling"]
    assert len(sampling) == 20 and torch.equal(sampling[5].t, torch.full((64,), 0.25))
    data = json.loads((tmp_path / "probe_data.json").read_text())
    assert data["velocity"]["sensitivity_t"] > 0 and data["inputs"]["ratios"]


def test_without_call_the_velocity_probe_says_why_it_did_not_run(tmp_path: Path) -> None:
    mon, _, _ = concat_flow_loop(tmp_path, with_call=False)
    found = codes(tmp_path)
    assert "probe-failed" not in found
    finding = found["probe-not-run"]
    assert finding["severity"] == "info" and finding["probe"] == "velocity"
    assert "watched with inputs= but without call=" in finding["message"]
    with pytest.raises(ValueError, match="ctx.evaluate: network 'net' was watched with inputs= but without call="):
        mon.ctx.evaluate("net", torch.zeros(4, 2), 0.5)


class TimeFirst(nn.Module):
    """Called `net(t, x)`, like torchdiffeq's odefunc."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 2))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, t.reshape(-1, 1).expand(len(x), 1)], dim=1))


class ScalarTime(nn.Module):
    """Called `net(x, t)` where t may be a float or a 0-d tensor shared by the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 32), nn.Tanh(), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1).expand(len(x), 1)
        return self.body(torch.cat([x, t], dim=1))


def sample_with_scalar_times(run_dir: Path, net: nn.Module, **watch: object) -> Recorder:
    mon = gendiag.Monitor(run_dir, task="flow", probes=["inputs"], strict=True)
    recorder = Recorder()
    mon.probes.append(recorder)
    mon.watch(net, name="net", **watch)
    gen = torch.Generator().manual_seed(3)
    mon.observe_data(two_blobs(256, gen))
    x = torch.randn(100, 2, generator=gen)
    dt = 1 / 20
    with mon.sampling(), torch.no_grad():
        for t in torch.linspace(0, 1, 20):  # 0-d tensors
            x = x + dt * (net(t, x) if isinstance(net, TimeFirst) else net(x, t))
        if isinstance(net, ScalarTime):
            net(x, 0.3)  # a Python float
    mon.observe_samples(x)
    mon.finish()
    assert "probe-failed" not in codes(run_dir)
    return recorder


@pytest.mark.parametrize("net, watch", [
    (TimeFirst(), {"inputs": lambda args, kwargs: (args[1], args[0]), "call": lambda net, x, t: net(t, x)}),
    (ScalarTime(), {}),
])
def test_scalar_times_are_recorded_per_row(tmp_path: Path, net: nn.Module, watch: dict) -> None:
    recorder = sample_with_scalar_times(tmp_path, net, **watch)
    times = torch.linspace(0, 1, 20)
    assert len(recorder.calls) >= 20
    for call, t in zip(recorder.calls, times):
        assert call.mode == "sampling" and call.t.shape == (64,) and call.x.shape == (64, 2)
        torch.testing.assert_close(call.t, torch.full((64,), float(t)))
    if isinstance(net, ScalarTime):
        torch.testing.assert_close(recorder.calls[-1].t, torch.full((64,), 0.3))


class ClassConditioned(nn.Module):
    """Called `net(x, onehot)`: its second argument is no time."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, onehot], dim=1))


def test_a_time_of_the_wrong_shape_stops_at_the_first_call(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path, task="flow", probes=["inputs"])
    net = mon.watch(ClassConditioned(), name="net")  # t_arg=1 left as it is by mistake
    with pytest.raises(ValueError, match=r"Monitor.watch\('net'\): the time has shape \(8, 3\) for a batch of 8"):
        net(torch.zeros(8, 2), torch.zeros(8, 3))


# -- per-epoch steps ----------------------------------------------------------------------------------------------


def test_per_epoch_batch_index_counts_a_global_step(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(two_blobs(200, gen)), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    with gendiag.Monitor(tmp_path, task="generic") as mon:
        for epoch in range(3):
            for i, (batch,) in enumerate(loader):
                loss = ((net(batch) - batch) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(i, loss, epoch=epoch)
    table = pd.read_csv(tmp_path / "metrics.csv")
    steps = table[table["tag"] == "loss/train"]["step"].tolist()
    assert steps == list(range(12))  # 4 batches an epoch, 3 epochs
    assert table[table["tag"] == "train/epoch"]["value"].tolist() == [0.0] * 4 + [1.0] * 4 + [2.0] * 4


def test_a_global_step_passed_with_epoch_is_refused(tmp_path: Path) -> None:
    mon = gendiag.Monitor(tmp_path, task="generic")
    for step in range(1, 5):
        mon.step(step, 1.0, epoch=0)
    with pytest.raises(ValueError, match="restarts each epoch; got 5 to open epoch 1 after 4 in epoch 0"):
        mon.step(5, 1.0, epoch=1)


def test_step_none_lets_the_monitor_count(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path, task="generic") as mon:
        for _ in range(3):
            mon.step(None, 1.0)
        mon.step(10, 1.0)
        mon.step(loss=0.5)
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table[table["tag"] == "loss/train"]["step"].tolist() == [1, 2, 3, 10, 11]
    with pytest.raises(ValueError, match="steps must increase, got 11 after 11"):
        mon.step(11, 1.0)


# -- GAN figures --------------------------------------------------------------------------------------------------


def test_a_gan_loop_without_gradient_norms_raises_no_user_warning(tmp_path: Path) -> None:
    """A discriminator far stronger than its generator (the figure shades the stretch) and no gradient norms
    passed: the gradient panel has no labelled line, which used to warn about an empty legend."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    g = nn.Sequential(nn.Linear(4, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    d = nn.Sequential(nn.Linear(1, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-5)
    opt_d = torch.optim.Adam(d.parameters(), lr=3e-3)
    bce = nn.BCEWithLogitsLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with gendiag.Monitor(tmp_path, task="gan", probes=["gan-balance"], strict=True) as mon:
            for epoch in range(2):
                for i in range(75):
                    real = 1.5 + 0.3 * torch.randn(64, 1, generator=gen)
                    fake = g(torch.randn(64, 4, generator=gen))
                    d_real, d_fake = d(real), d(fake.detach())
                    loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
                    opt_d.zero_grad()
                    loss_d.backward()
                    opt_d.step()
                    loss_g = bce(d(fake), torch.ones_like(d_fake))
                    opt_g.zero_grad()
                    loss_g.backward()
                    opt_g.step()
                    mon.step(i, epoch=epoch, loss_d=loss_d.item(), loss_g=loss_g.item(),
                             d_real=d_real.detach().squeeze(1), d_fake=d_fake.detach().squeeze(1), d_output="logit")
    found = codes(tmp_path)
    assert "gan-d-dominates" in found and "probe-failed" not in found
    assert math.isfinite(json.loads((tmp_path / "probe_data.json").read_text())["gan-balance"]["final_d_fake"])


class ColumnTimeNet(torch.nn.Module):
    """A user's flow network that takes t as a (B, 1) column: `torch.cat([x, t], 1)`."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t], dim=1))


def test_the_probes_call_a_network_with_t_in_the_form_the_loop_used(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = ColumnTimeNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with gendiag.Monitor(tmp_path / "run", task="flow", probes=["inputs", "velocity"], strict=True) as mon:
        mon.watch(net)
        for it in range(60):
            x1, x0, t = torch.randn(64, 2) + 3, torch.randn(64, 2), torch.rand(64, 1)
            loss = ((net(t * x1 + (1 - t) * x0, t) - (x1 - x0)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.observe_data(x1)
            mon.step(it, loss)
        assert mon.ctx.evaluate("model", torch.zeros(5, 2), 0.5).shape == (5, 2)
    assert "probe-failed" not in codes(tmp_path / "run")


def test_integer_timesteps_reach_the_network_as_integers(tmp_path: Path) -> None:
    embed = torch.nn.Embedding(10, 2)
    seen: list[torch.dtype] = []

    class StepNet(torch.nn.Module):
        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            seen.append(t.dtype)
            return x + embed(t)

    mon = gendiag.Monitor(tmp_path / "run", task="diffusion", probes=["inputs"])
    net = mon.watch(StepNet())
    net(torch.zeros(4, 2), torch.randint(0, 10, (4,)))
    assert mon.ctx.evaluate("model", torch.zeros(3, 2), 7.0).shape == (3, 2)
    assert seen == [torch.int64, torch.int64]
    mon.finish()

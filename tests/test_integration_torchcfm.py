"""torchcfm: `TorchCFMMonitor` on a loop written as torchcfm's README writes it: `ConditionalFlowMatcher` gives
(t, x_t, u_t), torchcfm's own time-varying `MLP` is called on `torch.cat([x_t, t[:, None]], -1)`, and an Euler
sampler (torchdyn left out) runs it from noise to two moons. Watching the inner network is enough: the healthy loop
raises no warning, and a loop that feeds the network the source batch x0 where x_t belongs is named
`train-sample-input-mismatch`."""

from __future__ import annotations

import json

import pytest
import torch

torchcfm = pytest.importorskip("torchcfm", reason="torchcfm is not installed (pip install 'gendiag[torchcfm]', or "
                               "--no-deps beside a CPU torch: see the README); the integration tests run with "
                               "-m integration")

from sklearn.datasets import make_moons  # noqa: E402
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher  # noqa: E402
from torchcfm.models import MLP  # noqa: E402

from gendiag.integrations.torchcfm import TorchCFMMonitor  # noqa: E402

pytestmark = pytest.mark.integration


def sample_moons(n: int, seed: int) -> torch.Tensor:
    x, _ = make_moons(n, noise=0.05, random_state=seed)
    return torch.from_numpy(x).float() * 2 - torch.tensor([1.0, 0.5])


def train_and_sample(run_dir, steps: int, feed_source: bool) -> tuple[list[dict], TorchCFMMonitor]:
    torch.manual_seed(0)
    FM = ConditionalFlowMatcher(sigma=0.05)
    model = MLP(dim=2, time_varying=True, w=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    with TorchCFMMonitor(run_dir, FM, model, optimizer=optimizer) as mon:
        for k in range(steps):
            optimizer.zero_grad()
            x0 = torch.randn(256, 2)
            x1 = sample_moons(256, seed=k)
            t, xt, ut = FM.sample_location_and_conditional_flow(x0, x1)
            vt = model(torch.cat([x0 if feed_source else xt, t[:, None]], dim=-1))
            per_sample = ((vt - ut) ** 2).mean(-1)
            loss = per_sample.mean()
            loss.backward()
            optimizer.step()
            mon.step(k, loss, t=t, per_sample_loss=per_sample.detach())
        with mon.sampling(), torch.no_grad():
            x = torch.randn(1000, 2)
            for i in range(50):
                t = torch.full((len(x), 1), i / 50)
                x = x + model(torch.cat([x, t], dim=-1)) / 50
        mon.observe_samples(x)
    assert "sample_location_and_conditional_flow" not in vars(FM)     # the matcher's own method is back
    return json.loads((run_dir / "findings.json").read_text())["findings"], mon


def serious(found: list[dict]) -> list[str]:
    return [f"{f['severity']} {f['code']}: {f['title']}" for f in found if f["severity"] in ("warning", "critical")]


def test_healthy_conditional_flow_matching_raises_no_warning(tmp_path) -> None:
    found, mon = train_and_sample(tmp_path / "run", steps=600, feed_source=False)
    assert serious(found) == []
    data = json.loads((tmp_path / "run" / "probe_data.json").read_text())
    assert data["inputs"]["t_change"]["ratio"] > 0.5               # the inputs probe saw x_t move with t
    assert [f["code"] for f in found if f["code"] == "probe-not-run"] == []   # the field probes ran the MLP


def test_network_fed_the_source_batch_is_train_sample_input_mismatch(tmp_path) -> None:
    found, _ = train_and_sample(tmp_path / "run", steps=300, feed_source=True)
    codes = {f["code"]: f for f in found}
    assert "train-sample-input-mismatch" in codes, sorted(codes)
    assert codes["train-sample-input-mismatch"]["severity"] == "critical"


def test_a_network_of_unknown_convention_is_refused_with_the_choices(tmp_path) -> None:
    FM = ConditionalFlowMatcher(sigma=0.0)
    with pytest.raises(ValueError, match="convention"):
        TorchCFMMonitor(tmp_path / "run", FM, torch.nn.Linear(3, 2))
    assert "sample_location_and_conditional_flow" not in vars(FM)     # refused before anything was wrapped
    assert not (tmp_path / "run").exists()


def test_torchcfm_unet_is_watched_as_t_then_x(tmp_path) -> None:
    from torchcfm.models.unet import UNetModel

    from gendiag.integrations.torchcfm import convention_of

    torch.manual_seed(0)
    unet = UNetModel(dim=(1, 8, 8), num_channels=32, num_res_blocks=1, channel_mult=(1, 2), attention_resolutions="4",
                     num_heads=1)
    assert convention_of(unet) == "t, x"
    FM = ConditionalFlowMatcher(sigma=0.0)
    with TorchCFMMonitor(tmp_path / "run", FM, unet, strict=True) as mon:
        x1 = torch.randn(4, 1, 8, 8)
        t, xt, ut = FM.sample_location_and_conditional_flow(torch.randn_like(x1), x1)
        vt = unet(t, xt)
        mon.step(0, ((vt - ut) ** 2).mean())
        evaluated = mon.ctx.evaluate("velocity", xt, t)
    assert evaluated.shape == vt.shape
    assert torch.allclose(evaluated, vt.detach(), atol=1e-5)          # the probes run it as the loop does

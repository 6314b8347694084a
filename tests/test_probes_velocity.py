"""Velocity probe: quivers of the learned and the exact field, the field error per t, and the rules
field-ignores-x / field-ignores-t, fired by networks that drop an argument and silent on a healthy one."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import gendiag
from gendiag.quantities.velocity import relative_variation
from gendiag.rules.thresholds import VELOCITY_IGNORES_T as IGNORES_T
from gendiag.rules.thresholds import VELOCITY_IGNORES_X as IGNORES_X
from gendiag.report import Report
from reference_models.nets import SinusoidalEmbedding, VelocityMLP
from tests.loops import FlowSetup, moons, train_flow


class WithoutTime(nn.Module):
    """A velocity network that was never given t: forward takes (x, t) and drops t."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class WithoutInput(nn.Module):
    """A velocity network whose forward drops x and sees only t's embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = SinusoidalEmbedding(16)
        self.net = nn.Sequential(nn.Linear(16, 64), nn.SiLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(self.embed(t))


def train_model(run_dir: Path, model: nn.Module, steps: int = 200) -> Report:
    """Plain flow matching on moons (x_t in, x1 - x0 out) for any network taking (x, t), with the velocity probe."""
    gen = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with gendiag.Monitor(run_dir, task="flow", probes=["velocity"], strict=True) as mon:
        mon.watch(model, name="model")
        for step in range(1, steps + 1):
            x1, x0 = moons(128, gen), torch.randn(128, 2, generator=gen)
            t = torch.rand(128, generator=gen)
            loss = (model(t[:, None] * x1 + (1 - t[:, None]) * x0, t) - (x1 - x0)).pow(2).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % 20 == 1:
                mon.observe_data(x1, role="data")
                mon.observe_data(x0, role="source")
            mon.step(step, loss)
    return mon.finish()


def test_relative_variation() -> None:
    constant = torch.ones(5, 7, 2)
    assert relative_variation(constant, 0) == 0.0 and relative_variation(constant, 1) == 0.0
    signs = torch.tensor([[1.0], [-1.0]]).expand(2, 3)[..., None]
    assert abs(relative_variation(signs, 0) - 1.0) < 1e-12 and relative_variation(signs, 1) == 0.0


def test_healthy_field_is_close_to_exact_and_raises_nothing(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(), probes=["velocity"], sample=False, figures="all")
    assert not {"field-ignores-x", "field-ignores-t"} & {f.code for f in report.findings}
    section = next(s for s in report.sections if s.title.startswith("Velocity field"))
    assert len(section.figures) == 2 and all((tmp_path / f).is_file() for f in section.figures)
    errors = section.table["relative_error"]
    assert float(errors.loc[0.0]) < 0.2 and float(errors.loc[0.5]) < 0.3
    assert float(section.table["sensitivity_x"].loc[0.0]) > 0.5
    metrics = (tmp_path / "metrics.csv").read_text()
    assert "flow/field_error/t=0.50" in metrics and "flow/sensitivity_t" in metrics


def test_network_without_t_fires_field_ignores_t(tmp_path: Path) -> None:
    report = train_model(tmp_path, WithoutTime())
    found = {f.code: f for f in report.findings}
    assert "field-ignores-t" in found and "field-ignores-x" not in found
    finding = found["field-ignores-t"]
    assert finding.evidence["sensitivity_t"] < IGNORES_T / 100
    assert (tmp_path / finding.figure).is_file()


def test_network_without_x_fires_field_ignores_x(tmp_path: Path) -> None:
    report = train_model(tmp_path, WithoutInput(), steps=60)
    found = {f.code: f for f in report.findings}
    assert "field-ignores-x" in found and found["field-ignores-x"].severity == "critical"
    assert max(found["field-ignores-x"].evidence["sensitivity_x_by_t"].values()) < IGNORES_X / 100
    assert "field-ignores-t" not in found


def test_high_dimensional_data_is_drawn_on_its_principal_plane(tmp_path: Path) -> None:
    """D = 16: data on a tilted plane; the section names the principal components and the field is compared."""
    gen = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(16, 2, generator=gen))[0].T
    model = VelocityMLP(dim=16, hidden=32, depth=2, time_dim=8)
    with gendiag.Monitor(tmp_path, task="flow", probes=["velocity"], strict=True) as mon:
        mon.watch(model, name="model")
        mon.observe_data(3 * moons(300, gen) @ basis, role="data")
        mon.observe_data(torch.randn(300, 16, generator=gen), role="source")
    section = next(s for s in mon.finish().sections if s.title.startswith("Velocity field"))
    assert "principal components" in section.text
    assert section.table["relative_error"].notna().all()

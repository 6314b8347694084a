"""TensorBoard's data/* and flow/* scalars (issue 24: "one point, measured once at the end"). The data checks and
the learned-against-exact field comparison run whenever the rules are asked, at each live check and at the end;
each measurement is logged at its own step, so the curves have a point per measurement, and where there was only
the one at the end the report says so rather than letting a single dot pass for a curve. On a user's own
flow-matching loop (their network takes (t, x), their data helper, their order of calls)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

import gendiag

STEPS = 60


class Field(torch.nn.Module):
    """The user's network: time first, then the point."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([t.reshape(-1, 1), x], dim=1))


def moons(n: int) -> torch.Tensor:
    angle = torch.rand(n) * math.pi
    upper = torch.rand(n) < 0.5
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2)


def train(run_dir: Path, check_every: int | None) -> pd.DataFrame:
    torch.manual_seed(0)
    field = Field()
    opt = torch.optim.Adam(field.parameters(), lr=2e-3)
    mon = gendiag.Monitor(run_dir, task="flow", probes=["data_repr", "velocity"], check_every=check_every,
                          check_seconds=0)
    mon.watch(field, x_arg=1, t_arg=0)
    for step in range(1, STEPS + 1):
        x1 = moons(128)
        x0 = torch.randn_like(x1)
        mon.observe_data(x1)
        t = torch.rand(128)
        loss = ((field(t, (1 - t[:, None]) * x0 + t[:, None] * x1) - (x1 - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step(step, loss)
    mon.finish()
    return pd.read_csv(run_dir / "metrics.csv")


def steps_of(table: pd.DataFrame, tag: str) -> list[int]:
    return table.loc[table["tag"] == tag, "step"].tolist()


def test_data_and_flow_scalars_have_a_point_per_measurement(tmp_path: Path) -> None:
    table = train(tmp_path / "run", check_every=10)
    for tag in ("data/rms", "data/distinct_fraction", "flow/sensitivity_t", "flow/field_error/t=0.50"):
        steps = steps_of(table, tag)
        assert len(steps) >= 2 and steps == sorted(set(steps)) and steps[0] == 10 and steps[-1] == STEPS, (tag, steps)
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "flow/* scalars hold one point per comparison" in report
    assert "data/* scalars hold one point per measurement" in report


def test_without_live_checks_the_report_says_the_point_is_the_only_one(tmp_path: Path) -> None:
    table = train(tmp_path / "run", check_every=None)
    assert steps_of(table, "data/rms") == steps_of(table, "flow/sensitivity_t") == [STEPS]
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert f"the flow/* scalars hold one point, at step {STEPS}" in report
    assert f"the data/* scalars hold one point, at step {STEPS}" in report

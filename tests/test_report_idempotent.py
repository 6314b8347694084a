"""`gendiag report RUN_DIR` renders a finished run again byte for byte: the tables keep their first column's header
(the index name, lost by the saved JSON before), and the report says how long the Monitor spent writing it."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

import gendiag
from gendiag.cli import main


def _user_flow_run(run_dir: Path) -> None:
    """A flow-matching loop as a user writes it: a DataLoader over a tensor, epochs, a model taking (x, t)."""
    torch.manual_seed(3)
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    points = centers[torch.randint(0, 3, (1536,))] + 0.2 * torch.randn(1536, 2)
    loader = DataLoader(TensorDataset(points), batch_size=128, shuffle=True)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))

    class Field(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(torch.cat([x, t.view(-1, 1)], dim=-1))

    model = Field()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with gendiag.Monitor(run_dir, task="flow", probes=["data_repr", "timing", "gradients", "loss"]) as monitor:
        monitor.watch(model, "field", x_arg=0, t_arg=1)
        step = 0
        for _epoch in range(8):
            for (x1,) in loader:
                with monitor.phase("data"):
                    x0 = torch.randn_like(x1)
                monitor.observe_data(x1)
                monitor.observe_data(x0, role="source")
                with monitor.phase("step"):
                    t = torch.rand(x1.shape[0])
                    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
                    err = (model(xt, t) - (x1 - x0)).pow(2).sum(-1)
                    optimizer.zero_grad()
                    err.mean().backward()
                    optimizer.step()
                step += 1
                monitor.step(step, err.mean(), t=t, per_sample_loss=err.detach())
        with monitor.sampling(), torch.no_grad():
            x = torch.randn(300, 2)
            for k in range(20):
                x = x + model(x, torch.full((300,), k / 20)) / 20
        monitor.observe_samples(x)


def test_report_renders_again_byte_for_byte(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _user_flow_run(run_dir)
    first = {name: (run_dir / name).read_bytes() for name in ("report.md", "report.html")}

    assert main(["report", str(run_dir)]) == 0
    assert main(["report", str(run_dir)]) == 0
    again = {name: (run_dir / name).read_bytes() for name in ("report.md", "report.html")}
    assert again == first

    markdown = first["report.md"].decode("utf-8")
    headers = re.findall(r"^\| (\S*) \|", markdown, flags=re.MULTILINE)
    assert {"measure", "phase", "tensor"} <= set(headers)
    assert "" not in headers  # no table lost its first column's header
    cost = re.search(r"^- \*\*report written in\*\*: (\d+\.\d) s after training", markdown, flags=re.MULTILINE)
    assert cost is not None and float(cost.group(1)) > 0

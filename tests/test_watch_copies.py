"""A `copy.deepcopy` of a watched network (an EMA copy made the usual way, after `watch`) carries the Monitor's
forward hook along; its calls must not be recorded as the watched network's."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

import gendiag


def sample(network: torch.nn.Module, mon: gendiag.Monitor) -> None:
    with torch.no_grad(), mon.sampling():
        x = torch.randn(64, 2)
        for i in range(10):
            x = x + network(torch.cat([x, torch.full((64, 1), i / 10)], 1)) / 10


def test_sampling_from_a_deepcopy_made_after_watch_is_not_recorded_as_the_watched_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))
    mon = gendiag.Monitor(tmp_path / "run", task="flow", probes=["sampling_calls"])
    mon.watch(net, inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2]))
    ema = copy.deepcopy(net)
    sample(ema, mon)
    sample(net, mon)
    mon.finish()
    motions = json.loads((tmp_path / "run" / "probe_data.json").read_text())["sampling_calls"]["motions"]
    assert [(m["model"], m["session"], m["calls"]) for m in motions] == [("model", 2, 10)]

"""A real `tensorboard` server on a loopback port reads a Monitor's run back: the scalar tags and their values are
exactly what the run logged (through the scalars plugin's HTTP data API)."""

from __future__ import annotations

from pathlib import Path

import pytest

import gendiag
from tests.tb_http import get_json, tensorboard_serving

LOGGED = {"loss/train": [2.5, 1.75, 1.125, 0.8125], "train/lr": [1e-3, 5e-4, 2.5e-4, 1.25e-4],
          "grad/global_norm": [10.0, 8.0, 6.0, 4.0]}


def test_tensorboard_serves_the_logged_scalars(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with gendiag.Monitor(run_dir, task="generic", probes=[]) as mon:
        for step, (loss, lr, norm) in enumerate(zip(*LOGGED.values()), start=1):
            mon.step(step, loss, lr=lr, **{"grad/global_norm": norm})
    mon.finish()
    with tensorboard_serving(run_dir / "tb", tmp_path / "tensorboard.log", set(LOGGED)) as (base, run):
        for tag, values in LOGGED.items():
            points = get_json(base, "/data/plugin/scalars/scalars", run=run, tag=tag)
            assert [step for _, step, _ in points] == [1, 2, 3, 4], tag
            assert [value for _, _, value in points] == pytest.approx(values, rel=1e-6), tag

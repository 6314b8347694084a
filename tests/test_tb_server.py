"""A real `tensorboard` server on a loopback port serves a user's run with every point: several per-step and
per-measurement series read back through the scalars plugin's HTTP data API have the lengths, steps and values of
metrics.csv, and the custom-scalars layout is served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.test_tb_contents import STEPS, train_user_flow
from tests.test_tensorboard_server import free_loopback_port, get_json, wait_for_tags

SERIES = ("loss/train", "loss/running_mean", "grad/global_norm", "grad/norm/velocity.body.2.weight", "time/data",
          "time/compute", "time/total", "grad/update_ratio", "loss_by_t/mean/t0.9-1.0", "samples/std_ratio")


def test_tensorboard_serves_every_point_of_the_per_step_series(tmp_path: Path) -> None:
    binary = Path(sys.executable).with_name("tensorboard")
    if not binary.is_file():
        pytest.skip(f"no tensorboard executable beside {sys.executable}")
    run_dir = tmp_path / "run"
    train_user_flow(run_dir)
    table = pd.read_csv(run_dir / "metrics.csv")

    port = free_loopback_port()
    log = (tmp_path / "tensorboard.log").open("w")
    server = subprocess.Popen(
        [str(binary), "--logdir", str(run_dir / "tb"), "--host", "127.0.0.1", "--port", str(port),
         "--load_fast=false", "--reload_interval", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        tags = wait_for_tags(base, server, set(SERIES))
        run = next(name for name, served in tags.items() if set(SERIES) <= set(served))
        for tag in SERIES:
            points = get_json(base, "/data/plugin/scalars/scalars", run=run, tag=tag)
            expected = table[table["tag"] == tag]
            assert len(points) == len(expected) > 1, tag
            assert [step for _, step, _ in points] == expected["step"].tolist(), tag
            assert [value for _, _, value in points] == pytest.approx(expected["value"].tolist(), rel=1e-6), tag
        assert len(get_json(base, "/data/plugin/scalars/scalars", run=run, tag="loss/train")) == STEPS
        layout = get_json(base, "/data/plugin/custom_scalars/layout")
        titles = {chart["title"] for category in layout["category"] for chart in category["chart"]}
        assert {"gradient norms", "mean loss per t bin", "seconds per step by phase"} <= titles
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()

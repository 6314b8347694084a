"""A real `tensorboard` server on a loopback port serves a user's run with every point: several per-step and
per-measurement series read back through the scalars plugin's HTTP data API have the lengths, steps and values of
metrics.csv, and the custom-scalars layout is served."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.test_tb_contents import STEPS, train_user_flow
from tests.tb_http import get_json, tensorboard_serving

SERIES = ("loss/train", "loss/running_mean", "grad/global_norm", "grad/norm/velocity.body.2.weight", "time/data",
          "time/compute", "time/total", "grad/update_ratio", "loss_by_t/mean/t0.9-1.0", "samples/std_ratio")


@pytest.mark.slow  # a real server over a trained run; the default set keeps test_tensorboard_server
def test_tensorboard_serves_every_point_of_the_per_step_series(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train_user_flow(run_dir)
    table = pd.read_csv(run_dir / "metrics.csv")
    with tensorboard_serving(run_dir / "tb", tmp_path / "tensorboard.log", set(SERIES)) as (base, run):
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

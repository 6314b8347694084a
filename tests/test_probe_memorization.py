"""The `memorization` probe: fires when generated samples copy the training batches it saw, stays silent on fresh
samples and on a generator collapsed onto mode centers (dense, but not copied)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gendiag

CENTERS = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0]])


def mixture(n: int, generator: torch.Generator) -> torch.Tensor:
    return CENTERS[torch.randint(0, 4, (n,), generator=generator)] + 0.3 * torch.randn(n, 2, generator=generator)


def run(run_dir: Path, make_samples: str) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    train = mixture(2000, generator)
    with gendiag.Monitor(run_dir, task="gan", probes=["memorization"], strict=True,
                         reference=mixture(1000, generator)) as mon:
        for step in range(1, 101):
            mon.observe_data(train[torch.randint(0, len(train), (64,), generator=generator)], role="data")
            mon.step(step, 0.0)
        samples = {
            "fresh": mixture(1000, generator),
            "copies": train[:1000] + 1e-4 * torch.randn(1000, 2, generator=generator),
            "centers": CENTERS[torch.randint(0, 4, (1000,), generator=generator)]
                       + 0.01 * torch.randn(1000, 2, generator=generator),
        }[make_samples]
        mon.observe_samples(samples)
    return json.loads((run_dir / "findings.json").read_text())["findings"]


def test_copies_of_training_samples_fire(tmp_path: Path) -> None:
    findings = run(tmp_path, "copies")
    assert [f["code"] for f in findings] == ["memorization"]
    evidence = findings[0]["evidence"]
    # Only training rows the probe saw can be found copied: 100 batches of 64 from 2,000 rows see ~96% of them.
    assert evidence["copy_share"] > 0.8 and evidence["mann_whitney_z"] < -3
    assert evidence["median_distance_ratio"] < 0.01 and evidence["training_rows_seen"] == 6400
    assert findings[0]["severity"] == "critical" and (tmp_path / findings[0]["figure"]).is_file()


@pytest.mark.parametrize("samples", ["fresh", "centers"])
def test_fresh_or_collapsed_samples_are_silent(tmp_path: Path, samples: str) -> None:
    assert run(tmp_path, samples) == []
    state = json.loads((tmp_path / "probe_data.json").read_text())["memorization"]
    assert state["copy_share"] < 0.05


def test_image_copies_fire_and_show_pairs(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(2)
    train = torch.rand(300, 1, 6, 6, generator=generator)
    with gendiag.Monitor(tmp_path, task="vae", probes=["memorization"], strict=True,
                         reference=torch.rand(300, 1, 6, 6, generator=generator)) as mon:
        for step in range(1, 11):
            mon.observe_data(train[(step - 1) * 30:step * 30])
            mon.step(step, 0.0)
        mon.observe_samples(train[:200].clone())
    findings = json.loads((tmp_path / "findings.json").read_text())["findings"]
    assert [f["code"] for f in findings] == ["memorization"]
    assert findings[0]["evidence"]["copy_share"] == 1.0


def test_without_reference_the_probe_says_nothing(tmp_path: Path) -> None:
    with gendiag.Monitor(tmp_path, task="gan", probes=["memorization"], strict=True) as mon:
        mon.observe_data(torch.randn(10, 2))
        mon.step(1, 0.0)
        mon.observe_samples(torch.randn(10, 2))
    assert json.loads((tmp_path / "findings.json").read_text())["findings"] == []

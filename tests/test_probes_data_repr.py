"""The data-representation probe on small real loops: the flagship's rendered point clouds fire its findings, the
rungs of the fix ladder lose the ones their fix addresses, and healthy point clouds and images stay silent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

import gendiag
from gendiag.data import load_digits, load_mnist, make_distribution, rasterize
from gendiag.quantities.data_repr import BatchSample
from gendiag.report import Report
from tests.loops import FlowSetup, codes, train_flow

PROBE = ["data_repr"]
Draw = Callable[[int, torch.Generator], torch.Tensor]


def rendered(name: str, mode: str = "binary", **params: Any) -> Draw:
    """Batches of 64x64 renders over [-5, 5]^2 of 50,000-point clouds, flattened (the flagship's samples)."""
    distribution = make_distribution(name, **params)

    def draw(batch: int, generator: torch.Generator) -> torch.Tensor:
        clouds = torch.stack([distribution.sample(50_000, generator=generator) for _ in range(batch)])
        return rasterize(clouds, size=64, scale=5.0, mode=mode).images

    return draw


def pixel_noise(batch: int, generator: torch.Generator, dim: int) -> torch.Tensor:
    return torch.randn(batch, dim, generator=generator)


def train_flattened(run_dir: Path, data: Draw, source: Draw | None = None, *, task: str = "flow", steps: int = 6,
                    batch: int = 16, strict: bool = True, **facts: Any) -> Report:
    """A small flow-matching loop on flattened samples with the flagship's bug (the network sees x0 at every t)
    and its learning rate; `source` defaults to pixel noise N(0, I)."""
    generator = torch.Generator().manual_seed(0)
    dim = data(1, generator).shape[1]
    draw_source = source or (lambda n, g: pixel_noise(n, g, dim))
    model = torch.nn.Sequential(torch.nn.Linear(dim + 1, 32), torch.nn.SiLU(), torch.nn.Linear(32, dim))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    with gendiag.Monitor(run_dir, task=task, probes=PROBE, strict=strict, **facts) as mon:
        for step in range(1, steps + 1):
            with mon.phase("data"):
                x1, x0 = data(batch, generator), draw_source(batch, generator)
            mon.observe_data(x1, role="data")
            mon.observe_data(x0, role="source")
            t = torch.rand(batch, 1, generator=generator) * 0.99
            per_sample = (model(torch.cat([x0, t], dim=1)) - (x1 - x0) / (1 - t)).pow(2).mean(1)
            optimizer.zero_grad()
            per_sample.mean().backward()
            optimizer.step()
            mon.step(step, per_sample.mean(), t=t.squeeze(1), per_sample_loss=per_sample.detach())
    return mon.finish()


def by_code(report: Report) -> dict[str, gendiag.findings.Finding]:
    return {f.code: f for f in report.findings}


def test_flagship_representation_fires_its_findings(tmp_path: Path) -> None:
    report = train_flattened(tmp_path, rendered("moons", noise=0.05, scale=5.0), rendered("gaussian"), steps=4,
                             batch=8)
    found = by_code(report)
    assert {"data-near-duplicates", "rendered-point-cloud", "source-not-noise", "data-binary-pixels"} <= set(found)
    assert "data-scale-mismatch" not in found
    duplicates = found["data-near-duplicates"]
    assert duplicates.severity == "critical"
    assert duplicates.evidence["effective_distinct"] < 1.5 and duplicates.evidence["samples_compared"] == 32
    assert duplicates.evidence["dimension"] == 4096 and duplicates.evidence["batch_size"] == 8
    assert found["rendered-point-cloud"].evidence["roles"] == ["data", "source"]
    source = found["source-not-noise"]
    assert source.severity == "critical" and source.evidence["two_level"] and source.evidence["ks_statistic"] > 0.3
    assert found["data-binary-pixels"].evidence["distinct_values"] == 2
    for finding in found.values():
        assert (tmp_path / finding.figure).is_file()
    saved = json.loads((tmp_path / "probe_data.json").read_text())["data_repr"]
    assert saved["data"]["effective distinct"] < 1.5 and saved["source"]["two-level values"] is True
    assert "Data representation" in (tmp_path / "report.md").read_text()


def test_density_images_with_pixel_noise_keep_only_the_representation_findings(tmp_path: Path) -> None:
    """Rung 2 of the fix ladder: grey-level density images and N(0, I) pixel noise; still one picture per sample."""
    report = train_flattened(tmp_path, rendered("moons", mode="density", noise=0.05, scale=5.0), steps=4, batch=8)
    assert codes(report) == {"data-near-duplicates", "rendered-point-cloud"}
    assert by_code(report)["rendered-point-cloud"].evidence["roles"] == ["data"]


def test_healthy_point_cloud_flow_is_silent(tmp_path: Path) -> None:
    report = train_flow(tmp_path, FlowSetup(steps=100), probes=PROBE, sample=False)
    assert report.findings == []
    saved = json.loads((tmp_path / "probe_data.json").read_text())["data_repr"]
    assert saved["data"]["distinct fraction"] == 1.0 and 0.1 < saved["scale_ratio"] < 5


@pytest.mark.parametrize("dataset", ["digits", "mnist"])
def test_normalised_images_with_pixel_noise_are_silent(tmp_path: Path, dataset: str) -> None:
    images = (load_digits() if dataset == "digits" else load_mnist())[0][:512]
    shape = tuple(images.shape[1:])
    flat = (images * 2 - 1).flatten(1)

    def data(batch: int, generator: torch.Generator) -> torch.Tensor:
        return flat[torch.randint(len(flat), (batch,), generator=generator)]

    report = train_flattened(tmp_path, data, batch=64, image_shape=shape)
    assert report.findings == []


def test_unnormalised_bytes_fire_scale_mismatch_only(tmp_path: Path) -> None:
    pixels = (load_mnist()[0][:256] * 255).round().flatten(1)
    report = train_flattened(tmp_path, lambda n, g: pixels[torch.randint(256, (n,), generator=g)], batch=32)
    assert codes(report) == {"data-scale-mismatch"}
    evidence = by_code(report)["data-scale-mismatch"].evidence
    assert evidence["looks_0_255"] and evidence["data_max"] == 255 and evidence["ratio"] > 50


def test_shifted_noise_is_only_a_warning(tmp_path: Path) -> None:
    points = make_distribution("moons", noise=0.05)
    report = train_flattened(tmp_path, lambda n, g: points.sample(n, generator=g),
                             lambda n, g: 3 + torch.randn(n, 2, generator=g), batch=64)
    finding = by_code(report)["source-not-noise"]
    assert finding.severity == "warning" and finding.evidence["mean"] == pytest.approx(3, abs=0.2)
    assert finding.evidence["ks_statistic"] < 0.1 and codes(report) == {"source-not-noise"}


@pytest.mark.parametrize("task, facts", [("vae", {}), ("generic", {"likelihood": "bernoulli"})])
def test_binary_pixels_are_only_info_where_binary_data_is_expected(tmp_path: Path, task: str,
                                                                   facts: dict[str, str]) -> None:
    binary = (load_mnist()[0][:256] > 0.5).float().flatten(1)
    report = train_flattened(tmp_path, lambda n, g: binary[torch.randint(256, (n,), generator=g)], task=task,
                             batch=32, **facts)
    finding = by_code(report)["data-binary-pixels"]
    assert finding.severity == "info" and finding.evidence["extreme_fraction"] == 1.0
    assert codes(report) == set()


def test_wrong_image_shape_switches_the_probe_off_with_a_clear_message(tmp_path: Path) -> None:
    report = train_flattened(tmp_path, lambda n, g: torch.rand(n, 64, generator=g), steps=2, strict=False,
                             image_shape=(1, 7, 7))
    failure = by_code(report)["probe-failed"]
    assert "image_shape (1, 7, 7) holds 49 values but a sample has 64" in failure.message


def test_batch_sample_spans_the_run_at_a_fixed_cost() -> None:
    sample = BatchSample(capacity=8, rows=4)
    for index in range(100):
        sample.offer(torch.full((10, 3), float(index)), "data")
    kept = [int(batch[0, 0]) for batch in sample.batches]
    assert len(kept) <= 8 and kept[0] == 0 and kept[-1] >= 64
    assert all(index % sample.stride == 0 for index in kept) and kept == sorted(kept)
    assert all(batch.shape == (4, 3) for batch in sample.batches)
    fresh = BatchSample()
    fresh.offer(torch.zeros(2, 3), "source")
    with pytest.raises(ValueError, match=r"source batches changed shape from \(3,\) to \(5,\)"):
        fresh.offer(torch.zeros(2, 5), "source")

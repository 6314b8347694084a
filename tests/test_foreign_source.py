"""A source that is not N(0, I) on purpose: eight Gaussians to moons, written the way the torchcfm tutorial writes
it (its own samplers, a network on cat([x, t]), an Euler loop), through the public API only.

A chosen source that the sampler also starts from is no fault; a sampler that starts elsewhere is. The exact field
behind the velocity probe must start from the observed source, not from N(0, I)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons
from torch import nn

import gendiag
from gendiag.quantities.source import declared_rows
from gendiag.flow import exact_velocity, source_bandwidth
from gendiag.report import Report


# -- the user's code: torchcfm's data helpers and a network on cat([x, t]) --------------------------------------------

def eight_normal_sample(n: int, dim: int, scale: float = 1, var: float = 1) -> torch.Tensor:
    """torchcfm's, with its MultivariateNormal(0, sqrt(var)·I) drawn as randn · var^(1/4), and without its
    per-row Python loop."""
    centers = [(1, 0), (-1, 0), (0, 1), (0, -1), (1.0 / np.sqrt(2), 1.0 / np.sqrt(2)),
               (1.0 / np.sqrt(2), -1.0 / np.sqrt(2)), (-1.0 / np.sqrt(2), 1.0 / np.sqrt(2)),
               (-1.0 / np.sqrt(2), -1.0 / np.sqrt(2))]
    centers = torch.tensor(centers) * scale
    noise = torch.randn(n, dim) * math.sqrt(math.sqrt(var))
    multi = torch.multinomial(torch.ones(8), n, replacement=True)
    return centers[multi] + noise


def sample_8gaussians(n: int) -> torch.Tensor:
    return eight_normal_sample(n, 2, scale=5, var=0.1).float()


def sample_moons(n: int) -> torch.Tensor:
    x0, _ = make_moons(n, noise=0.2)
    return torch.from_numpy(x0 * 3 - 1).float()


def sample_normal(n: int) -> torch.Tensor:
    return torch.randn(n, 2)


class MLP(nn.Module):
    def __init__(self, dim: int, w: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, w), nn.SELU(), nn.Linear(w, w), nn.SELU(), nn.Linear(w, w),
                                 nn.SELU(), nn.Linear(w, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Velocity(nn.Module):
    """The user's wrapper so that the watched network takes (x, t)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t.reshape(-1, 1).expand(x.shape[0], 1)], dim=-1))


def train_cfm(run_dir: Path, train_source: Callable[[int], torch.Tensor],
              sampler_source: Callable[[int], torch.Tensor] | None, *, steps: int = 600,
              probes: str | list[str] = "default", **facts: object) -> Report:
    """The tutorial's loop: x0 from `train_source`, x1 from moons, x_t on the straight line, target x1 - x0; then
    an Euler sampler from `sampler_source` inside `mon.sampling()` (none when it is None)."""
    torch.manual_seed(0)
    np.random.seed(0)
    batch_size = 256
    velocity = Velocity(MLP(dim=2))
    optimizer = torch.optim.Adam(velocity.parameters(), lr=1e-3)
    mon = gendiag.Monitor(run_dir, task="flow", probes=probes, strict=True, **facts)
    mon.watch(velocity, name="velocity")
    for k in range(steps):
        optimizer.zero_grad()
        x0 = train_source(batch_size)
        x1 = sample_moons(batch_size)
        t = torch.rand(x0.shape[0]).type_as(x0)
        xt = t[:, None] * x1 + (1 - t[:, None]) * x0
        ut = x1 - x0
        vt = velocity(xt, t)
        loss = torch.mean((vt - ut) ** 2)
        loss.backward()
        optimizer.step()
        if k % 50 == 0:
            mon.observe_data(x1, role="data")
            mon.observe_data(x0, role="source")
        mon.step(k, loss)
    if sampler_source is not None:
        with torch.no_grad(), mon.sampling():
            x = sampler_source(512)
            for i in range(100):
                x = x + velocity(x, torch.full((x.shape[0],), i / 100)) / 100
        mon.observe_samples(x)
    return mon.finish()


def by_code(report: Report) -> dict[str, gendiag.Finding]:
    return {f.code: f for f in report.findings}


SOURCE_CODES = {"source-sampler-mismatch", "source-not-noise", "source-chosen"}


# -- the loops ---------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_eight_gaussians_to_moons_sampled_from_eight_gaussians_is_no_fault(tmp_path: Path) -> None:
    report = train_cfm(tmp_path, sample_8gaussians, sample_8gaussians, steps=400, probes=["data_repr", "velocity"])
    serious = {f.code for f in report.findings if f.severity in ("critical", "warning")}
    assert not serious & (SOURCE_CODES | {"field-ignores-x", "field-ignores-t"})
    chosen = by_code(report)["source-chosen"]
    assert chosen.severity == "info" and chosen.evidence["matches_sampler"] is True
    assert chosen.evidence["std"] > 2.5  # the rows' spread: eight Gaussians on a circle of radius 5
    saved = json.loads((tmp_path / "probe_data.json").read_text())
    match = saved["data_repr"]["source_vs_sampler"]
    assert not match["differs"] and match["energy_coefficient"] < 0.02
    velocity = saved["velocity"]
    assert velocity["empirical_source"]["origin"] == "observed"
    # the exact field from N(0, I) would be 5 to 23 times the field's size off at t <= 0.5; from the rows, ~0.1-0.2
    assert max(error for t, error in velocity["field_error"].items() if float(t) <= 0.5) < 0.5
    assert min(velocity["sensitivity_x"].values()) > 0.5


def test_sampler_started_from_randn_after_training_from_eight_gaussians_is_critical(tmp_path: Path) -> None:
    report = train_cfm(tmp_path, sample_8gaussians, sample_normal, steps=60, probes=["data_repr"])
    found = by_code(report)
    mismatch = found["source-sampler-mismatch"]
    assert mismatch.severity == "critical"
    evidence = mismatch.evidence["sampler"]
    assert evidence["differs"] and evidence["p_value"] < 0.01 and evidence["energy_coefficient"] > 0.1
    assert min(evidence["std_training"]) > 2.5 and max(abs(s - 1) for s in evidence["std_compared"]) < 0.3
    assert (tmp_path / mismatch.figure).is_file()
    assert "source-not-noise" not in found and "source-chosen" not in found


def test_randn_source_sampled_from_randn_stays_silent(tmp_path: Path) -> None:
    report = train_cfm(tmp_path, sample_normal, sample_normal, steps=60, probes=["data_repr"])
    assert report.findings == []
    match = json.loads((tmp_path / "probe_data.json").read_text())["data_repr"]["source_vs_sampler"]
    assert not match["differs"]


def test_randn_training_with_eight_gaussian_sampler_is_critical(tmp_path: Path) -> None:
    report = train_cfm(tmp_path, sample_normal, sample_8gaussians, steps=60, probes=["data_repr"])
    assert {f.code for f in report.findings if f.severity == "critical"} == {"source-sampler-mismatch"}


def test_a_declared_source_stands_for_the_sampler(tmp_path: Path) -> None:
    """No sampling calls recorded: the declared source (a callable that takes only n) is what is compared."""
    report = train_cfm(tmp_path / "same", sample_8gaussians, None, steps=60, probes=["data_repr"],
                       source=sample_8gaussians)
    assert {f.code: f.severity for f in report.findings} == {"source-chosen": "info"}
    other = train_cfm(tmp_path / "other", sample_8gaussians, None, steps=60, probes=["data_repr"],
                      source=sample_normal)
    assert by_code(other)["source-sampler-mismatch"].evidence["declared"]["differs"]


def test_without_sampling_or_declaration_a_chosen_source_is_only_a_warning(tmp_path: Path) -> None:
    report = train_cfm(tmp_path, sample_8gaussians, None, steps=60, probes=["data_repr"])
    finding = by_code(report)["source-not-noise"]
    assert finding.severity == "warning"
    assert "source=" in finding.suggestion and "mon.sampling()" in finding.suggestion
    assert "fine if the sampler starts from the same distribution" in finding.message


def test_drawing_a_declared_source_leaves_the_users_random_state_alone() -> None:
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    rows = declared_rows(lambda n: torch.from_numpy(make_moons(n)[0]) + torch.randn(n, 2) + random.random(), 64)
    assert rows.shape == (64, 2) and rows.dtype == torch.float64
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
    assert torch.equal(declared_rows(torch.ones(10, 1, 2, 2), 4), torch.ones(4, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="fact 'source' must be a callable"):
        declared_rows("eight gaussians", 4)


# -- the exact field from an empirical source --------------------------------------------------------------------------

def brute_force_field(x: torch.Tensor, t: torch.Tensor, data: torch.Tensor, source: torch.Tensor,
                      sigma: float) -> torch.Tensor:
    """The definition, one query and one (data, source) pair at a time: the posterior over pairs of the mixture
    component N(t·x1_i + (1 − t)·s_j, (1 − t)²σ²I) times the conditional velocity (x1_i − x)/(1 − t)."""
    rows = []
    for q in range(x.shape[0]):
        logits, velocities = [], []
        for i in range(data.shape[0]):
            for j in range(source.shape[0]):
                centre = t[q] * data[i] + (1 - t[q]) * source[j]
                logits.append(-((x[q] - centre) ** 2).sum() / (2 * (1 - t[q]) ** 2 * sigma ** 2))
                velocities.append((data[i] - x[q]) / (1 - t[q]))
        weights = torch.softmax(torch.stack(logits), 0)
        rows.append((weights[:, None] * torch.stack(velocities)).sum(0))
    return torch.stack(rows)


def test_empirical_source_field_matches_the_brute_force_definition() -> None:
    data = torch.tensor([[0.0, 2.0], [3.0, -1.0], [-2.0, -2.0]], dtype=torch.float64)
    source = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.5, -4.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0], [4.0, 1.0], [-3.0, 2.5], [1.0, -3.0], [0.2, 0.1]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.2, 0.5, 0.8, 0.95], dtype=torch.float64)
    got = exact_velocity(x, t, data, source=source, bandwidth=0.7, chunk=2)
    torch.testing.assert_close(got, brute_force_field(x, t, data, source, 0.7), rtol=1e-10, atol=1e-10)
    # one source point at the origin with σ = 1 is N(0, I): the Gaussian formula
    origin = torch.zeros(1, 2, dtype=torch.float64)
    torch.testing.assert_close(exact_velocity(x, t, data, source=origin, bandwidth=1.0), exact_velocity(x, t, data))


def test_many_gaussian_source_points_approach_the_gaussian_field() -> None:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(20, 2, generator=gen, dtype=torch.float64) * 2 + 1
    source = torch.randn(4000, 2, generator=gen, dtype=torch.float64)
    sigma = source_bandwidth(source)
    assert 0.03 < sigma < 0.4
    for t in (0.1, 0.5, 0.9):
        x = t * data[torch.randint(20, (300,), generator=gen)] + (1 - t) * torch.randn(300, 2, generator=gen,
                                                                                     dtype=torch.float64)
        empirical = exact_velocity(x, t, data, source=source, bandwidth=sigma, max_pairs=20 * 4000)
        gaussian = exact_velocity(x, t, data)
        error = float((empirical - gaussian).pow(2).sum(1).mean() / gaussian.pow(2).sum(1).mean())
        assert error < 0.02, (t, error)


def test_pairs_beyond_the_budget_are_drawn_once_for_every_call() -> None:
    torch.manual_seed(1)
    np.random.seed(1)
    data, source = sample_moons(300).double(), sample_8gaussians(500).double()
    x = 0.5 * sample_moons(200).double() + 0.5 * sample_8gaussians(200).double()  # points of the path at t = 0.5
    drawn = exact_velocity(x, 0.5, data, source=source)  # 300 x 500 pairs over the budget: 27 per data point
    torch.testing.assert_close(drawn, exact_velocity(x, 0.5, data, source=source))
    full = exact_velocity(x, 0.5, data, source=source, max_pairs=300 * 500)
    few = exact_velocity(x, 0.5, data, source=source, max_pairs=1200)

    def error(field: torch.Tensor) -> float:
        return float((field - full).pow(2).sum(1).mean() / full.pow(2).sum(1).mean())

    assert error(drawn) < 0.05 and error(few) > error(drawn)  # measured: 0.020 and 0.116


def test_a_fixed_start_batch_reused_at_every_checkpoint_matches_its_source(tmp_path: Path) -> None:
    """Fixed noise to watch progress by: the same 64 starts at every checkpoint, each run from t = 0 again."""
    torch.manual_seed(0)
    velocity = Velocity(MLP(dim=2))
    fixed_x0 = sample_8gaussians(64)
    with gendiag.Monitor(tmp_path, task="flow", probes=["data_repr"], strict=True) as mon:
        mon.watch(velocity, name="velocity")
        for k in range(60):
            x0, x1, t = sample_8gaussians(128), sample_moons(128), torch.rand(128)
            velocity(t[:, None] * x1 + (1 - t[:, None]) * x0, t)
            mon.observe_data(x1, role="data")
            mon.observe_data(x0, role="source")
            mon.step(k, 0.0)
            if k % 10 == 0:
                with torch.no_grad(), mon.sampling():
                    for _ in range(2):  # two sampler runs in one block: both start at t = 0
                        x = fixed_x0.clone()
                        for i in range(10):
                            x = x + velocity(x, torch.full((64,), i / 10)) / 10
    report = mon.finish()
    assert {f.code: f.severity for f in report.findings} == {"source-chosen": "info"}
    match = json.loads((tmp_path / "probe_data.json").read_text())["data_repr"]["source_vs_sampler"]
    assert match["rows_compared"] == 64 and not match["differs"]

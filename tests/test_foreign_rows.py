"""Rows kept are an unbiased sample of the rows seen, on loops written the way users write them.

The user's data helper here is scikit-learn's `make_moons(shuffle=False)` written out in numpy: the upper moon, then
the lower one, each ordered along its arc. Keeping the first rows of each batch kept one end of the upper moon, and
`train-sample-input-mismatch` fired critical on a healthy flow-matching loop; shuffling the rows silenced it. Here
the finding stays silent on sorted batches, on the whole small data set fed in order, and on shuffled rows; it still
fires when the network is fed the source batch; what the probes keep has the mean and spread of what they were shown;
and neither the Monitor nor the reservoirs draw from torch's global generator.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import gendiag
from gendiag.flow.reservoir import Reservoir
from gendiag.quantities.data_repr import BatchSample
from gendiag.rows import RowPicker, aligned_rows


def make_moons(n_samples: int = 256, noise: float = 0.05, rng: np.random.Generator | None = None) -> np.ndarray:
    """Two interleaving half circles, as sklearn.datasets.make_moons(shuffle=False): the upper moon, then the lower
    one, each ordered by angle."""
    rng = np.random.default_rng() if rng is None else rng
    n_out, n_in = n_samples // 2, n_samples - n_samples // 2
    outer, inner = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack([np.stack([np.cos(outer), np.sin(outer)], axis=1),
                   np.stack([1 - np.cos(inner), 1 - np.sin(inner) - 0.5], axis=1)])
    return X + rng.normal(scale=noise, size=X.shape)


class MLP(nn.Module):
    """v(x, t) with t of shape (B, 1), concatenated to x."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t.view(-1, 1)], dim=1))


@torch.no_grad()
def sample(model: nn.Module, n: int = 512, steps: int = 20) -> torch.Tensor:
    x = torch.randn(n, 2)
    for i in range(steps):
        x = x + model(x, torch.full((n, 1), i / steps)) / steps
    return x


def sorted_batches(batch_size: int = 256) -> Callable[[], torch.Tensor]:
    """A fresh make_moons batch each step, rows in the helper's order."""
    rng = np.random.default_rng(0)
    return lambda: torch.from_numpy(make_moons(batch_size, rng=rng)).float()


def whole_dataset_in_order(n: int = 256) -> Callable[[], torch.Tensor]:
    """One small data set, fed whole and in order at every step."""
    X = torch.from_numpy(make_moons(n, rng=np.random.default_rng(0))).float()
    return lambda: X


def shuffled_batches(batch_size: int = 256) -> Callable[[], torch.Tensor]:
    rng = np.random.default_rng(0)
    return lambda: torch.from_numpy(rng.permutation(make_moons(batch_size, rng=rng))).float()


def train(run_dir: Path, next_batch: Callable[[], torch.Tensor], *, feed_source: bool = False, steps: int = 300,
          probes: str | list[str] = ("inputs",)) -> tuple[gendiag.Monitor, torch.Tensor]:
    """Rectified flow on two moons as a user writes it (global seed, randn_like, t of shape (B, 1)); returns the
    Monitor and every network input of training. `feed_source` feeds the network x0 instead of x_t (the bug)."""
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fed = []
    with gendiag.Monitor(run_dir, task="flow", probes=list(probes), strict=True) as mon:
        mon.watch(model, x_arg=0, t_arg=1)
        for it in range(steps):
            x1 = next_batch()
            x0 = torch.randn_like(x1)
            t = torch.rand(len(x1), 1)
            xt = (1 - t) * x0 + t * x1
            inputs = x0 if feed_source else xt
            fed.append(inputs)
            loss = F.mse_loss(model(inputs, t), x1 - x0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if it % 10 == 0:
                mon.observe_data(x1)
                mon.observe_data(x0, role="source")
            mon.step(it, loss.item())
        with mon.sampling():
            samples = sample(model)
        mon.observe_samples(samples)
    return mon, torch.cat(fed)


def probe(mon: gendiag.Monitor, name: str) -> gendiag.probes.base.Probe:
    return next(p for p in mon.probes if p.name == name)


def assert_like(kept: torch.Tensor, population: torch.Tensor, what: str) -> None:
    """The kept rows' mean within 4 standard errors of the population's, their spread within 10%."""
    kept, population = kept.double(), population.double()
    error = population.std(0) / math.sqrt(len(kept))
    assert ((kept.mean(0) - population.mean(0)).abs() < 4 * error).all(), (
        f"{what}: kept mean {kept.mean(0).tolist()} against {population.mean(0).tolist()} (SE {error.tolist()})")
    assert ((kept.std(0) / population.std(0) - 1).abs() < 0.1).all(), (
        f"{what}: kept std {kept.std(0).tolist()} against {population.std(0).tolist()}")


@pytest.mark.slow
@pytest.mark.parametrize("data", [sorted_batches, whole_dataset_in_order, shuffled_batches])
def test_rows_in_order_do_not_make_a_healthy_loop_look_mismatched(tmp_path: Path, data: Callable) -> None:
    next_batch = data()
    mon, fed = train(tmp_path, next_batch)
    report = mon.finish()
    assert "train-sample-input-mismatch" not in {f.code for f in report.findings}, [
        (f.code, f.severity, f.evidence.get("worst_ratio")) for f in report.findings]
    assert not [f for f in report.findings if f.severity in ("critical", "warning")]
    inputs = probe(mon, "inputs")
    kept = inputs._train["model"]
    assert kept.seen == 300 * 8 and len(kept) == 2048
    assert_like(kept.rows, fed, "training inputs kept")
    assert abs(float(kept.times.mean()) - 0.5) < 4 * (1 / math.sqrt(12)) / math.sqrt(2048)
    data_rows = torch.cat([next_batch() for _ in range(4)])
    assert_like(inputs._data.rows[:512], data_rows, "data rows behind the data-source distance")


def test_data_repr_keeps_rows_from_the_whole_of_each_sorted_batch() -> None:
    next_batch = sorted_batches()
    kept = BatchSample()
    batches = [next_batch() for _ in range(8)]
    for batch in batches:
        kept.offer(batch, "data")
    assert kept.rows_kept().shape == (8 * 64, 2)
    assert_like(kept.rows_kept(), torch.cat(batches), "data_repr's kept data rows")


def test_feeding_the_source_batch_still_fires_on_sorted_batches(tmp_path: Path) -> None:
    mon, _ = train(tmp_path, sorted_batches(), feed_source=True, probes=["inputs"])
    found = [f for f in mon.finish().findings if f.code == "train-sample-input-mismatch"]
    assert len(found) == 1 and found[0].severity == "critical"
    assert "hardly change with t" in found[0].message


def test_the_monitor_never_draws_from_the_global_generator(tmp_path: Path) -> None:
    """The probes that keep rows attached (inputs: the forward hook's rows and its reservoirs; sampler: reservoirs;
    data_repr: rows of each batch): each step's hooks, observe_data and step leave torch's global generator as they
    found it, and the trained weights equal those of the same loop without a Monitor."""
    def run(mon: gendiag.Monitor | None) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = MLP()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        if mon is not None:
            mon.watch(model, x_arg=0, t_arg=1)
        next_batch = sorted_batches(200)
        for it in range(40):
            x1 = next_batch()
            x0 = torch.randn_like(x1)
            t = torch.rand(len(x1), 1)
            state = torch.random.get_rng_state()
            loss = F.mse_loss(model((1 - t) * x0 + t * x1, t), x1 - x0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if mon is not None:
                if it % 20 == 0:
                    mon.observe_data(x1)
                    mon.observe_data(x0, role="source")
                mon.step(it, loss.item())
            assert torch.equal(torch.random.get_rng_state(), state), f"global generator moved at step {it}"
        return [p.detach().clone() for p in model.parameters()]

    with gendiag.Monitor(tmp_path, task="flow", probes=["inputs", "sampler", "data_repr"], strict=True) as mon:
        watched = run(mon)
    for a, b in zip(watched, run(None)):
        assert torch.equal(a, b)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=10), capacity=st.integers(1, 64))
def test_reservoir_keeps_every_row_of_sorted_batches_with_equal_chance(sizes: list[int], capacity: int) -> None:
    """Sorted batches (row value = its number in the stream) of varying sizes, under 150 reservoir seeds: every row is
    kept as often as every other, the kept rows and any prefix of them average to the stream's mean, no row is kept
    twice, times stay with their rows, and torch's global generator is untouched."""
    total, seeds = sum(sizes), 150
    kept_count = min(total, capacity)
    head = max(1, kept_count // 2)
    before = torch.random.get_rng_state()
    counts = torch.zeros(total)
    means, head_means = [], []
    for seed in range(seeds):
        reservoir = Reservoir(capacity, seed=seed)
        start = 0
        for size in sizes:
            values = torch.arange(start, start + size, dtype=torch.float32)
            reservoir.add(torch.stack([values, -values], dim=1), times=values)
            start += size
        kept = reservoir.rows[:, 0]
        assert len(reservoir) == kept_count and reservoir.seen == total
        assert len(torch.unique(kept)) == kept_count
        assert torch.equal(reservoir.rows[:, 1], -kept) and torch.equal(reservoir.times, kept)
        counts[kept.long()] += 1
        means.append(float(kept.double().mean()))
        head_means.append(float(kept[:head].double().mean()))
    assert torch.equal(torch.random.get_rng_state(), before)
    chance = kept_count / total
    spread = math.sqrt(seeds * chance * (1 - chance))
    assert float((counts - seeds * chance).abs().max()) <= 6 * spread + 1e-9
    population_mean, population_var = (total - 1) / 2, (total ** 2 - 1) / 12
    for n, observed in ((kept_count, means), (head, head_means)):
        error = math.sqrt(population_var / n * (total - n) / max(total - 1, 1) / seeds)
        assert abs(float(np.mean(observed)) - population_mean) <= 5 * error + 1e-9


@settings(max_examples=30, deadline=None, derandomize=True)
@given(batch=st.integers(1, 300), keep=st.integers(1, 80), width=st.integers(1, 3))
def test_rows_of_one_call_are_distinct_aligned_and_unbiased(batch: int, keep: int, width: int) -> None:
    """A sorted forward call (x, t per row, output, a scalar): x, t and output get the same rows, distinct ones, as
    many as asked; over many calls the rows kept, and the first 8 of them, average to the batch's mean."""
    before = torch.random.get_rng_state()
    picker = RowPicker(seed=0)
    x = torch.arange(batch, dtype=torch.float32)[:, None].repeat(1, width)
    t = torch.arange(batch, dtype=torch.float32)[:, None] / batch
    means, head_means = [], []
    for _ in range(100):
        kept_x, kept_t, kept_out, scalar, missing = aligned_rows((x, t, 2 * x, torch.tensor(0.5), None), keep, picker)
        assert len(kept_x) == min(batch, keep) and len(torch.unique(kept_x[:, 0])) == len(kept_x)
        assert torch.equal(kept_t[:, 0], kept_x[:, 0] / batch) and torch.equal(kept_out, 2 * kept_x)
        assert scalar.item() == 0.5 and missing is None
        means.append(float(kept_x[:, 0].double().mean()))
        head_means.append(float(kept_x[:8, 0].double().mean()))
    assert torch.equal(torch.random.get_rng_state(), before)
    population_mean, population_var = (batch - 1) / 2, (batch ** 2 - 1) / 12
    for n, observed in ((min(batch, keep), means), (min(batch, keep, 8), head_means)):
        error = math.sqrt(population_var / n * (batch - n) / max(batch - 1, 1) / 100)
        assert abs(float(np.mean(observed)) - population_mean) <= 5 * error + 1e-9

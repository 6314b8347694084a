"""`gendiag compare` puts the energy distance beside W2 (issue 24: "nothing points out where the runs' metrics
disagree with what the eye sees"). Two runs of a user's own sampling script: one sampler puts 99% of its points on
the data and 1% far away, the other blurs every point a little. W2 squares distances, so the few far points make it
favour the blurred run; the energy distance favours the run whose points lie on the data, as the eye does, and the
comparison says that the two disagree."""

from __future__ import annotations

import math
from pathlib import Path

import torch

import gendiag
from gendiag.compare import compare_runs, load_summary, metrics_table

W2, ENERGY = "W2 / its floor", "energy distance (data spreads)"


def two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    """The user's data helper: two interleaved half circles with a little noise."""
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=generator)


def outlying(n: int, generator: torch.Generator) -> torch.Tensor:
    """Samples on the data, but one in a hundred thrown far off."""
    points = two_moons(n, generator)
    points[: n // 100] += 10.0
    return points


def blurred(n: int, generator: torch.Generator) -> torch.Tensor:
    """Every sample a little off the data."""
    return two_moons(n, generator) + 0.3 * torch.randn(n, 2, generator=generator)


def user_run(run_dir: Path, sampler) -> None:
    """The user's script: feed the data batches it trains on, then hand the Monitor what its sampler drew."""
    generator = torch.Generator().manual_seed(0)
    mon = gendiag.Monitor(run_dir, probes=["samples_vs_data"], check_every=None)
    for step in range(1, 9):
        mon.observe_data(two_moons(256, generator))
        mon.step(step, loss=1.0 / step)
    mon.observe_samples(sampler(500, generator))
    mon.finish()


def test_compare_says_where_w2_and_the_energy_distance_favour_different_runs(tmp_path: Path) -> None:
    user_run(tmp_path / "outlying", outlying)
    user_run(tmp_path / "blurred", blurred)
    runs = [load_summary(tmp_path / name) for name in ("outlying", "blurred")]
    table, sentences = metrics_table(runs)
    assert table.loc[W2].tolist()[1].startswith("**")  # W2 prefers the blurred samples ...
    assert table.loc[ENERGY].tolist()[0].startswith("**")  # ... the energy distance the ones on the data
    disagreement = [s for s in sentences if W2 in s and ENERGY in s]
    assert len(disagreement) == 1 and "favours run 2 (blurred)" in disagreement[0]
    assert f"{ENERGY} favours run 1 (outlying)" in disagreement[0]
    text = compare_runs([tmp_path / "outlying", tmp_path / "blurred"], out_dir=tmp_path / "cmp").markdown_path
    written = text.read_text(encoding="utf-8")
    assert f"| {ENERGY} |" in written and "**The metrics disagree**" in written
    section = (tmp_path / "outlying" / "report.md").read_text(encoding="utf-8")
    assert "Energy distance" in section  # the run's own report states it beside W2

"""The multi-process figures (`gendiag.figures.distributed`): on fingerprint tables built in process as each rank
would (`tests.test_distributed.tables`), the figure shows what the rule judged and the finding names it; under
torchrun (slow, in tests/test_distributed.py) rank 0 draws it only where the finding holds."""

from __future__ import annotations

import torch

from gendiag.figures.distributed import MAX_EPOCHS, epoch_order_figure, same_noise_figure
from gendiag.probes.distributed import NOISE_FIGURE, ORDER_FIGURE, SUM
from gendiag.rules.distributed import distributed_findings, judge_ranks
from gendiag.rules.thresholds import DISTRIBUTED_SAME_SHARE
from tests.test_distributed import tables


def draws(seed: int, steps: int) -> list[torch.Tensor]:
    """A user's per-step noise, each step drawn from its own generator."""
    return [torch.randn(16, 2, generator=torch.Generator().manual_seed(seed * 1000 + step)) for step in range(steps)]


def test_same_noise_figure_puts_rank_1_on_the_diagonal_and_the_share_over_the_threshold() -> None:
    same, apart = draws(0, 20), draws(1, 20)
    everyone = tables({"noise": same}, {"noise": same}, {"noise": apart})
    judged = judge_ranks(everyone)
    (finding,) = distributed_findings(judged, f"figures/{NOISE_FIGURE}.png", f"figures/{ORDER_FIGURE}.png")
    assert finding.code == "ddp-same-noise-across-ranks" and finding.figure == f"figures/{NOISE_FIGURE}.png"
    sums = {"noise": [[row[SUM] for row in ranks["noise"]] for ranks in everyone]}
    shares = [("noise", row["rank"], row["share"]) for row in judged["same"]["noise"]]
    figure = same_noise_figure(sums, shares)
    scatter, bars = figure.axes
    rank1, rank2 = (collection.get_offsets() for collection in scatter.collections)
    assert len(rank1) == len(rank2) == 20
    assert (rank1[:, 0] == rank1[:, 1]).all()  # rank 1 drew rank 0's noise: every step on the diagonal
    assert not (rank2[:, 0] == rank2[:, 1]).any()
    assert [patch.get_height() for patch in bars.patches] == [1.0, 0.0]
    threshold = [line for line in bars.get_lines() if line.get_linestyle() == "--"]
    assert list(threshold[0].get_ydata()) == [DISTRIBUTED_SAME_SHARE] * 2


def test_epoch_order_figure_draws_one_line_per_epoch_laid_on_one_another() -> None:
    epoch = draws(2, 6)
    everyone = tables({"data": epoch * 4}, {"data": epoch * 4})
    judged = judge_ranks(everyone)
    (finding,) = distributed_findings(judged, f"figures/{NOISE_FIGURE}.png", f"figures/{ORDER_FIGURE}.png")
    assert finding.code == "distributed-sampler-epoch-unset" and finding.figure == f"figures/{ORDER_FIGURE}.png"
    rows = [(row["rank"], row["period"], row["share"], [fp[SUM] for fp in everyone[row["rank"]]["data"]])
            for row in judged["repeats"]]
    figure = epoch_order_figure(rows)
    assert len(figure.axes) == 2
    lines = figure.axes[0].get_lines()
    assert len(lines) == 4 and all(list(line.get_xdata()) == list(range(6)) for line in lines)
    assert all(list(line.get_ydata()) == list(lines[0].get_ydata()) for line in lines)
    assert "every 6" in figure.axes[0].get_title()


def test_epoch_order_figure_draws_at_most_max_epochs_lines() -> None:
    epoch = draws(3, 2)
    figure = epoch_order_figure([(0, 2, 1.0, [float(tensor.sum()) for tensor in epoch * 30])])
    assert len(figure.axes[0].get_lines()) == MAX_EPOCHS


def test_findings_name_no_figure_unless_given_one() -> None:
    same = draws(4, 20)
    assert [finding.figure for finding in distributed_findings(judge_ranks(tables({"noise": same},
                                                                                   {"noise": same})))] == [None]

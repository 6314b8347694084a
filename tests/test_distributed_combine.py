"""Multi-process training (issue 21): what `gendiag.distributed.combine` does, on rank 0, with the rows each rank's
probes kept once every rank's state arrived: reservoirs merged so that every row offered on any rank is equally
likely to be judged (the training and sampling inputs, the times of the calls, the data rows and the samples set
against them), at most what one rank keeps, counts summed, drawn from generators of their own (neither the user's
nor torch's global one); ranks whose rows cannot be merged give a one-line reason. In process: each rank is a probe
instance fed rows that name their rank; `extract` of both, `absorb` into the first (rank 0's)."""

from __future__ import annotations

import random

import torch

from gendiag.distributed import COMBINERS
from gendiag.flow.reservoir import Reservoir
from gendiag.probes.base import ForwardCall
from gendiag.probes.inputs import InputsProbe
from gendiag.probes.samples_vs_data import SamplesVsDataProbe
from gendiag.probes.sampling_calls import SamplingCallsProbe
from gendiag.quantities.samples_vs_data import KEEP_SAMPLES, samples_kept


def marked(rank: int, rows: int, width: int, start: int = 0) -> torch.Tensor:
    """Rows whose first value is their rank and second their index in the rank's stream."""
    batch = torch.randn(rows, width, generator=torch.Generator().manual_seed(rank * 1000 + start))
    batch[:, 0], batch[:, 1] = float(rank), torch.arange(start, start + rows, dtype=torch.float32)
    return batch


def combined(name: str, probes: list) -> str | None:
    """`combine`'s work on rank 0 for the probe `name`, with `probes[r]` as rank r's; the global random states must
    come out as they went in."""
    extract, absorb = COMBINERS[name]
    before = torch.get_rng_state(), random.getstate()
    why = absorb(probes[0], None, [extract(probe, None) for probe in probes])
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    return why


def test_a_merged_reservoir_is_a_uniform_sample_of_every_part_and_stays_one() -> None:
    """Rank 1 was offered three times rank 0's rows: it gives about three quarters of the merged rows, each with its
    own time; rows offered after the merge are kept as by one reservoir offered them all (as many new as old rows
    offered: about half of those kept)."""
    parts = [Reservoir(400, seed=1), Reservoir(400, seed=2)]
    for rank, (reservoir, rows) in enumerate(zip(parts, (1000, 3000))):
        batch = marked(rank, rows, 2)
        reservoir.add(batch, batch[:, 1] / 10)
    merged = parts[0]
    merged.merge([part.kept() for part in parts])
    rows, times = merged.rows, merged.times
    assert merged.seen == 4000 and len(rows) == 400
    assert 255 < int((rows[:, 0] == 1).sum()) < 345  # 300 expected, hypergeometric sd 8.4
    assert torch.equal(times, rows[:, 1] / 10)
    assert len(set(map(tuple, rows.tolist()))) == 400
    merged.add(marked(2, 4000, 2))
    assert merged.seen == 8000 and 150 < int((merged.rows[:, 0] == 2).sum()) < 250  # 200 expected, sd 10


def test_the_input_rows_each_rank_recorded_are_combined() -> None:
    """The inputs probe on rank 0 compares training and sampling inputs of both ranks: each of its reservoirs at most
    its capacity, a uniform sample of both ranks' rows, every row offered counted."""
    probes = [InputsProbe(), InputsProbe()]
    for rank, probe in enumerate(probes):
        for call in range(150):  # 8 rows a training call kept: 1,200 a rank, over the reservoir's 1,024
            x = marked(rank, 16, 4, start=16 * call)
            probe.on_forward(None, ForwardCall("net", "train", call, x, torch.rand(16), None))
        for call in range(10):
            x = marked(rank, 16, 4, start=16 * call)
            probe.on_forward(None, ForwardCall("net", "sampling", 150, x, torch.full((16,), call / 10), None))
        probe.on_data(None, marked(rank, 64, 4), "data")
        probe.on_data(None, marked(rank, 64, 4), "source")
    assert combined("inputs", probes) is None
    train, sampling = probes[0]._train["net"], probes[0]._sampling["net"]
    assert train.seen == 2 * 1200 and len(train) == train.capacity == 1024
    assert 430 < int((train.rows[:, 0] == 1).sum()) < 594  # 512 expected, hypergeometric sd 12
    assert sampling.seen == len(sampling) == 320 and int((sampling.rows[:, 0] == 1).sum()) == 160
    assert torch.isfinite(train.times).all() and sampling.times.unique().numel() == 10
    assert probes[0]._data.seen == probes[0]._source.seen == 128
    assert set(probes[0]._data.rows[:, 0].tolist()) == {0.0, 1.0}


def test_input_rows_of_another_shape_on_a_rank_are_not_combined() -> None:
    probes = [InputsProbe(), InputsProbe()]
    for rank, probe in enumerate(probes):
        probe.on_forward(None, ForwardCall("net", "train", 1, marked(rank, 16, 4 + rank), torch.rand(16), None))
    why = combined("inputs", probes)
    assert why == "inputs: the ranks' train input (net) rows differ in shape [(4,), (5,)]; its comparison is rank 0's"
    assert probes[0]._train["net"].seen == 8  # rank 0's own: 8 rows of its training call


def test_the_times_of_every_rank_calls_are_combined() -> None:
    """The sampling-calls probe sets the sampler's times against the training times of both ranks."""
    probes = [SamplingCallsProbe(), SamplingCallsProbe()]
    for rank, probe in enumerate(probes):
        for call in range(20):
            probe.on_forward(None, ForwardCall("net", "train", call, torch.zeros(8, 2), torch.full((8,), rank + 0.5),
                                               None))
    assert combined("sampling_calls", probes) is None
    train = probes[0]._coverage["net"].train
    assert train.seen == 320 and sorted(set(train.rows.reshape(-1).tolist())) == [0.5, 1.5]


def test_the_samples_and_data_rows_of_every_rank_are_combined() -> None:
    """The samples against the data: rank 0 compares the last samples of both ranks (at most as many as one rank
    keeps) with data rows of both ranks; a rank that observed no samples (sampling on rank 0 alone) adds none."""
    probes = [SamplesVsDataProbe(), SamplesVsDataProbe(), SamplesVsDataProbe()]
    for rank, probe in enumerate(probes):
        probe.on_data(None, marked(rank, 1500, 3), "data")
        if rank < 2:
            probe.against.add_samples(marked(rank, 1500, 3), step=200)
    assert combined("samples_vs_data", probes) is None
    against = probes[0].against
    assert against.data.seen == 4500 and len(against.data) == against.data.capacity == 2048
    assert set(against.data.rows[:, 0].tolist()) == {0.0, 1.0, 2.0}
    assert len(against.samples) == KEEP_SAMPLES and against.samples_step == 200
    assert 900 < int((against.samples[:, 0] == 1).sum()) < 1148  # 1,024 expected, hypergeometric sd 16
    assert against.why_not() is None


def test_large_samples_are_kept_and_sent_by_bytes_not_rows() -> None:
    """Samples of 64x64x3 images: each rank keeps, and rank 0 combines, at most 2^21 numbers of them (170 rows, 8 MB),
    not 2,048 rows (100 MB a rank); the comparison uses at most half the data rows, which are capped alike."""
    probes = [SamplesVsDataProbe(), SamplesVsDataProbe()]
    for rank, probe in enumerate(probes):
        probe.on_data(None, marked(rank, 400, 64 * 64 * 3), "data")
        probe.against.add_samples(marked(rank, 400, 64 * 64 * 3), step=200)
        assert len(probe.against.samples) == samples_kept(64 * 64 * 3) == 2**21 // (64 * 64 * 3) == 170
    assert combined("samples_vs_data", probes) is None
    against = probes[0].against
    assert len(against.samples) == 170 and set(against.samples[:, 0].tolist()) == {0.0, 1.0}
    assert len(against.samples) <= 2 * against.gap().n_compared


def test_samples_of_different_steps_or_rows_of_another_shape_are_not_combined() -> None:
    probes = [SamplesVsDataProbe(), SamplesVsDataProbe()]
    for rank, probe in enumerate(probes):
        probe.on_data(None, marked(rank, 100, 3), "data")
        probe.against.add_samples(marked(rank, 100, 3), step=200 + rank)
    assert combined("samples_vs_data", probes) == (
        "samples_vs_data: the ranks' last samples have [3] values each, observed at steps [200, 201]; its comparison "
        "is rank 0's")
    assert probes[0].against.data.seen == 100 and len(probes[0].against.samples) == 100
    assert combined("samples_vs_data", [probes[0], SamplesVsDataProbe()]) is None  # nothing on the other rank
    odd = SamplesVsDataProbe()
    odd.on_data(None, marked(1, 100, 6), "data")
    assert combined("samples_vs_data", [probes[0], odd]) == (
        "samples_vs_data: the ranks' data rows differ in shape [(3,), (6,)]; its comparison is rank 0's")

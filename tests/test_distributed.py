"""Multi-process training (issue 21): a user's DDP flow loop under torchrun with two gloo processes on the loopback
writes one run folder, from rank 0, whose per-time loss counts are the sum over both ranks; identical seeds on
every rank are named (`ddp-same-noise-across-ranks`), so is a DistributedSampler whose epoch is never set
(`distributed-sampler-epoch-unset`), and the healthy loop raises neither. The rules' edges are checked on
fingerprint tables in process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from gendiag.quantities.distributed import Fingerprints
from gendiag.rules.distributed import distributed_findings, judge_ranks

ROOT = Path(__file__).resolve().parents[1]
LOOP = ROOT / "tests" / "ddp_scripts" / "flow_ddp.py"
VARIANTS = ("healthy", "same-noise", "epoch-unset", "rank1-stops", "stop-on", "rank0-only")  # rank0-only last


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


GLOO_ABORT = "terminate called without an active exception"  # a rank killed by an exception in a gloo thread


def torchrun(args_in: Callable[[Path], list[str]], folder: Path, timeout: float) -> Path:
    """`python -m torch.distributed.run --nproc_per_node=2 ARGS` on the loopback, one torch thread per process,
    `args_in(out)` naming an empty output folder, temporary files in a scratch folder beside it; returns the output
    folder. Fails the test with the output on a non-zero exit, but runs once more, in fresh folders and with a
    warning, where a rank was aborted from inside gloo (seen once here, two pytest workers beside the two ranks)."""
    for attempt in (1, 2):
        out, scratch = folder / f"attempt{attempt}" / "out", folder / f"attempt{attempt}" / "scratch"
        out.mkdir(parents=True)
        scratch.mkdir()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                   f"--master_port={free_port()}", *args_in(out)]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        output = done.stdout + done.stderr
        if done.returncode == 0 or GLOO_ABORT not in output or attempt == 2:
            break
        warnings.warn(f"torchrun: a rank aborted inside gloo; ran once more. Its output ended: {output[-3000:]}")
    assert done.returncode == 0, output[-4000:]
    assert not list(scratch.glob("gendiag-rank*")), "a rank's scratch folder was left behind"
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return torchrun(lambda out: [str(LOOP), str(out), *VARIANTS], tmp_path_factory.mktemp("ddp"), timeout=300)


def findings(run_dir: Path) -> list[str]:
    return [finding["code"] for finding in json.loads((run_dir / "findings.json").read_text())["findings"]]


@pytest.mark.slow
def test_one_run_folder_per_run_written_by_rank_0(runs: Path) -> None:
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == sorted(VARIANTS)
    for variant in VARIANTS[:3]:
        assert (runs / variant / "report.md").is_file()
        assert "Trained on 2 processes (gloo)" in (runs / variant / "report.md").read_text()
        state = json.loads((runs / variant / "probe_data.json").read_text())["distributed"]
        assert state["world_size"] == 2 and state["combined"] == ["loss_by_t", "inputs", "samples_vs_data"]
        assert json.loads((runs / f"{variant}-findings-rank1.json").read_text()) == []  # rank 1 reports nothing


@pytest.mark.slow
def test_a_run_stopped_on_one_rank_is_judged_on_rank_0_alone(runs: Path) -> None:
    """Rank 1 finished as a stopped run, rank 0 as a whole one: no statistics are combined (they need not line up),
    and neither rank waits for the other for ever."""
    report = (runs / "rank1-stops" / "report.md").read_text()
    assert "No statistics were combined across the ranks" in report
    assert json.loads((runs / "rank1-stops" / "probe_data.json").read_text())["distributed"]["combined"] == []


@pytest.mark.slow
def test_live_checks_judge_every_rank_and_every_rank_stops_with_rank_0(runs: Path) -> None:
    """Live checks every 12 steps: the first (step 12) already compares both ranks' draws, which only combining can
    (each rank alone sees nothing amiss), and names the identical seeds; `should_stop` is rank 0's on both ranks, so
    the loop leaves on both at that step with no collective of its own (a rank that went on would wait for ever in
    DistributedDataParallel's backward), and the final findings of the two stopped ranks are still combined."""
    live = [json.loads(line) for line in (runs / "stop-on" / "findings_live.jsonl").read_text().splitlines()]
    assert [(entry["step"], entry["event"], entry["code"]) for entry in live] == \
        [(12, "appeared", "ddp-same-noise-across-ranks")]
    ranks = [json.loads((runs / f"stop-on-findings-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [rank["stopped"] for rank in ranks] == [12, 12]
    assert "ddp-same-noise-across-ranks" in ranks[0]["codes"] and ranks[1]["codes"] == []
    assert json.loads((runs / "stop-on" / "probe_data.json").read_text())["distributed"]["combined"] == \
        ["loss_by_t", "inputs", "samples_vs_data"]
    for variant, code in (("same-noise", "ddp-same-noise-across-ranks"),
                          ("epoch-unset", "distributed-sampler-epoch-unset")):
        live = [json.loads(line) for line in (runs / variant / "findings_live.jsonl").read_text().splitlines()]
        assert [(entry["step"], entry["code"]) for entry in live] == [(12, code)]
    assert not (runs / "healthy" / "findings_live.jsonl").exists()  # its live checks announced nothing


@pytest.mark.slow
def test_a_monitor_on_rank_0_alone_finishes_without_the_others(runs: Path) -> None:
    """A loop that makes its Monitor on rank 0 only (as it does its other logging): `finish` asks no other rank for
    anything (they never call it), and the report says so."""
    report = (runs / "rank0-only" / "report.md").read_text()
    assert "Trained on 2 processes (gloo)" in report
    assert "only 1 of the 2 ranks made this Monitor" in report


@pytest.mark.slow
def test_per_time_loss_counts_are_the_sum_over_both_ranks(runs: Path) -> None:
    """48 steps make one chunk, so the table's counts are every step's: each rank's t binned, added once (the live
    check at step 12, which combined the ranks too, folded them into copies of rank 0's probes)."""
    expected = np.zeros(10, dtype=int)
    for rank in (0, 1):
        times = json.loads((runs / f"healthy-times-rank{rank}.json").read_text())
        drawn = np.array([t for step in times.values() for t in step])
        expected += np.bincount(np.minimum((drawn * 10).astype(int), 9), minlength=10)
    sections = json.loads((runs / "healthy" / "sections.json").read_text())
    table = next(section["table"] for section in sections if section["title"] == "Loss by t")
    counts = [row[table["columns"].index("samples")] for row in table["data"]]
    assert counts == expected.tolist() and sum(counts) == 2 * 48 * 32


@pytest.mark.slow
def test_rank_0_judges_the_inputs_and_samples_of_both_ranks(runs: Path) -> None:
    """Each rank sampled 256 points in 10 recorded calls (64 rows of each recorded) after 48 steps (8 input rows of
    each kept): rank 0 compares the samples of both ranks with data rows of both, and the sampling inputs of both
    with the training inputs of both."""
    state = json.loads((runs / "healthy" / "probe_data.json").read_text())["samples_vs_data"]
    assert state["n_samples"] == 2 * 256 and state["n_data"] == 2048  # of 2 x 48 x 32 data rows: the reservoir
    sections = json.loads((runs / "healthy" / "sections.json").read_text())
    text = next(section["text"] for section in sections if section["title"] == "Training versus sampling inputs")
    assert f"{2 * 48 * 8} training input rows (of {2 * 48 * 8} recorded) and {2 * 10 * 64} sampling input" in text


@pytest.mark.slow
def test_identical_seeds_are_named_and_the_healthy_loop_is_silent(runs: Path) -> None:
    assert "ddp-same-noise-across-ranks" in findings(runs / "same-noise")
    for variant in ("healthy", "epoch-unset"):
        assert "ddp-same-noise-across-ranks" not in findings(runs / variant)
    assert findings(runs / "healthy") == []


@pytest.mark.slow
def test_a_sampler_whose_epoch_is_never_set_is_named(runs: Path) -> None:
    assert "distributed-sampler-epoch-unset" in findings(runs / "epoch-unset")
    finding = next(f for f in json.loads((runs / "epoch-unset" / "findings.json").read_text())["findings"]
                   if f["code"] == "distributed-sampler-epoch-unset")
    assert {row["period"] for row in finding["evidence"]["ranks"]} == {6}  # six batches an epoch on each rank
    for variant in ("healthy", "same-noise"):
        assert "distributed-sampler-epoch-unset" not in findings(runs / variant)


@pytest.mark.slow
def test_rank_0_draws_each_figure_only_where_its_finding_holds(runs: Path) -> None:
    for variant, figure, code in (("same-noise", "distributed_same_noise", "ddp-same-noise-across-ranks"),
                                  ("epoch-unset", "distributed_epoch_order", "distributed-sampler-epoch-unset")):
        assert (runs / variant / "figures" / f"{figure}.png").is_file()
        finding = next(f for f in json.loads((runs / variant / "findings.json").read_text())["findings"]
                       if f["code"] == code)
        assert finding["figure"] == f"figures/{figure}.png"
    assert not list((runs / "healthy").glob("figures/distributed_*.png"))
    assert not (runs / "same-noise" / "figures" / "distributed_epoch_order.png").exists()
    assert not (runs / "epoch-unset" / "figures" / "distributed_same_noise.png").exists()


@pytest.mark.slow
def test_a_shipped_case_runs_under_torchrun(tmp_path) -> None:
    out = torchrun(lambda out: ["-m", "gendiag", "run", "cases/pointcloud_moons.yaml", "--out", str(out),
                                "--set", "training.steps=40", "--set", "sampling.n_samples=200",
                                "--set", "sampling.steps=10", "--set", "data.heldout=200"], tmp_path, timeout=400)
    folders = list((out / "pointcloud_moons").iterdir())
    assert len(folders) == 1
    header = json.loads((folders[0] / "run.json").read_text())
    assert header["ranks"] == 2 and header["status"] == "finished"
    assert not {"ddp-same-noise-across-ranks", "distributed-sampler-epoch-unset"} & set(findings(folders[0]))


@pytest.mark.slow
def test_stop_on_stops_every_rank_at_one_step(tmp_path) -> None:
    """Rank 0's live check (at a flush: every 20 steps here) finds the schedule's fault at step 20; both ranks end
    there (neither waits for ever in a collective the other left) and rank 0 writes the partial report."""
    out = torchrun(lambda out: ["-m", "gendiag", "run", "cases/ddpm_swissroll.yaml", "--out", str(out),
                                "--set", "training.steps=300", "--set", "probes.check_every=20",
                                "--set", "probes.check_seconds=0", "--set", "probes.flush_every=20",
                                "--stop-on", "warning"], tmp_path, timeout=400)
    (folder,) = list((out / "ddpm_swissroll").iterdir())
    header = json.loads((folder / "run.json").read_text())
    assert header["status"].startswith("stopped on critical finding schedule-not-reaching-noise at step 20")
    assert json.loads((folder / "findings.json").read_text())["partial"] is not None


# -- the rules on fingerprint tables, in process ----------------------------------------------------------------

def tables(*streams: dict[str, list]) -> list[dict[str, list[tuple]]]:
    """Fingerprint tables per rank from the tensors each rank saw, stream by stream."""
    everyone = []
    for rank_streams in streams:
        tabled = {}
        for name, tensors in rank_streams.items():
            prints = Fingerprints()
            for tensor in tensors:
                prints.add(tensor)
            tabled[name] = prints.table()
        everyone.append(tabled)
    return everyone


def codes(everyone: list[dict[str, list[tuple]]]) -> list[str]:
    return [finding.code for finding in distributed_findings(judge_ranks(everyone))]


def test_fixed_times_alike_on_every_rank_are_not_same_noise() -> None:
    """A loop that visits the same grid of t every step (on every rank) draws no times; with noise drawn apart the
    ranks are independent."""
    import torch

    grid = [torch.linspace(0, 1, 16) for _ in range(20)]
    apart = [[torch.randn(16, 2, generator=torch.Generator().manual_seed(100 * rank + i)) for i in range(20)]
             for rank in (0, 1)]
    assert codes(tables({"times": grid, "noise": apart[0]}, {"times": grid, "noise": apart[1]})) == []
    same = [torch.randn(16, 2, generator=torch.Generator().manual_seed(i)) for i in range(20)]
    assert codes(tables({"times": grid, "noise": same}, {"times": grid, "noise": same})) == [
        "ddp-same-noise-across-ranks"]


def test_too_few_steps_and_full_batch_training_are_not_judged() -> None:
    import torch

    few = [torch.rand(8, generator=torch.Generator().manual_seed(i)) for i in range(5)]
    assert codes(tables({"times": few}, {"times": few})) == []
    whole = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    assert codes(tables({"data": [whole] * 30}, {"data": [whole] * 30})) == []  # one batch an epoch: order moot
    epoch = [torch.randn(8, 2, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    assert codes(tables({"data": epoch * 4}, {"data": epoch * 4})) == ["distributed-sampler-epoch-unset"]


def test_a_ddp_model_in_a_group_of_one_is_watched_through_its_network(tmp_path) -> None:
    """In process: a process group of one (gloo, an in-memory store) and a DistributedDataParallel model; the
    Monitor watches the network inside (which probes may run on one rank alone) and the report counts one process."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import gendiag

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))
        model = DistributedDataParallel(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        gen = torch.Generator().manual_seed(0)
        with gendiag.Monitor(tmp_path / "run", task="flow", probes=["loss_by_t"], check_every=None) as mon:
            assert mon.watch(model, inputs=lambda args, kwargs: (args[0][:, :2], args[0][:, 2])) is model
            assert mon.ctx.models["model"].module is net
            for step in range(1, 21):
                x1, x0 = torch.randn(32, 2, generator=gen), torch.randn(32, 2, generator=gen)
                t = torch.rand(32, generator=gen)
                xt = (1 - t[:, None]) * x0 + t[:, None] * x1
                per_sample = (model(torch.cat([xt, t[:, None]], 1)) - (x1 - x0)).square().mean(1)
                opt.zero_grad()
                per_sample.mean().backward()
                opt.step()
                mon.step(step, per_sample.mean(), t=t, per_sample_loss=per_sample)
    finally:
        dist.destroy_process_group()
    assert "Trained on 1 process (gloo)" in (tmp_path / "run" / "report.md").read_text()
    assert findings(tmp_path / "run") == []


def test_the_data_rows_each_rank_kept_are_combined() -> None:
    """What `combine` does with the data-representation probe once every rank's kept batches arrived: rank 0 judges
    rows of both ranks, as many batches as one rank keeps at most, and counts every batch offered."""
    import torch

    from gendiag.distributed import COMBINERS
    from gendiag.probes.data_repr import DataRepresentationProbe

    extract, absorb = COMBINERS["data_repr"]
    probes = [DataRepresentationProbe(), DataRepresentationProbe()]
    for rank, probe in enumerate(probes):
        for batch in range(probe.kept["data"].capacity):
            probe.on_data(None, torch.full((16, 2), float(100 * rank + batch)), "data")
    assert absorb(probes[0], None, [extract(probe, None) for probe in probes]) is None
    kept = probes[0].kept["data"]
    values = set(kept.rows_kept()[:, 0].tolist())
    assert len(kept.batches) == kept.capacity and kept.offered == 2 * kept.capacity
    assert {value // 100 for value in values} == {0, 1} and len(values) == kept.capacity


def test_times_seen_only_in_the_network_calls_are_compared() -> None:
    """A loop that passes t to its network but not to `mon.step`: the recorded training calls' times are enough."""
    import torch

    drawn = [[torch.rand(64, generator=torch.Generator().manual_seed(100 * rank + i)) for i in range(20)]
             for rank in (0, 1)]
    assert codes(tables({"call_times": drawn[0]}, {"call_times": drawn[1]})) == []
    assert codes(tables({"call_times": drawn[0]}, {"call_times": drawn[0]})) == ["ddp-same-noise-across-ranks"]

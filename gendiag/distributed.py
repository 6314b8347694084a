"""Training on several processes (`torch.distributed`, torchrun): which rank this process is, where it writes, and
how the probes' statistics from every rank are combined at the end.

Every rank's Monitor gathers as in a single process. Only rank 0 writes the run folder, TensorBoard and the report;
the other ranks write into a private scratch folder that `finish` removes. At `finish` every rank sends what the
combinable probes gathered (`COMBINERS`, one collective: `all_gather_object`, which gloo and NCCL both carry) and rank
0 folds it into its own probes before their rules decide, once, on the combined data. A live check does the same
at a flush every rank reaches, into copies of rank 0's probes (`combined_view`). The runner (`gendiag run` under
torchrun) uses the helpers at the bottom: start the process group from torchrun's environment, give each
rank its own random streams, average the gradients before each optimizer step."""

from __future__ import annotations

import copy
import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.distributed import distributed_c10d

from gendiag.context import ProbeContext
from gendiag.flow.reservoir import Reservoir
from gendiag.probes.base import Probe
from gendiag.quantities.samples_vs_data import samples_kept
from gendiag.quantities.sampling_calls import TimeCoverage


@dataclass(frozen=True)
class Ranks:
    """This process's place in an initialised process group; for a Monitor, its number among the Monitors this
    process made (the n-th Monitor of every rank has number n)."""

    rank: int
    world: int
    backend: str
    monitor: int = 0

    @property
    def writes(self) -> bool:
        """Whether this rank writes the run folder (rank 0 only)."""
        return self.rank == 0


def current_ranks() -> Ranks | None:
    """The initialised default process group as seen by this process, or None when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), backend=str(dist.get_backend()))


_MONITORS = itertools.count(1)


def enlist_monitor() -> Ranks | None:
    """`current_ranks` for a new Monitor, counted in the process group's store, so that `finish` can tell whether
    every rank made one (a loop that makes its Monitor on rank 0 alone must not wait for the others at `finish`)."""
    ranks = current_ranks()
    if ranks is None:
        return None
    number = next(_MONITORS)
    _store().add(f"gendiag/monitor{number}/ranks", 1)
    return Ranks(ranks.rank, ranks.world, ranks.backend, monitor=number)


def ranks_with_monitor(ranks: Ranks) -> int:
    """How many ranks made this Monitor, as the first rank to finish it counted: every rank gets the same answer,
    without a collective (a rank with no Monitor takes part in none)."""
    return _fixed_count(ranks, "counted")


def _fixed_count(ranks: Ranks, name: str) -> int:
    """The number of ranks that made this Monitor, as the first rank to ask under `name` found it (the store keeps
    that first answer for every later asker)."""
    store, key = _store(), f"gendiag/monitor{ranks.monitor}"
    seen = store.add(f"{key}/ranks", 0)
    return int(store.compare_set(f"{key}/{name}", "", str(seen)))


def _store() -> dist.Store:
    """The default process group's key-value store (torch names no public accessor for it)."""
    return distributed_c10d._get_default_store()


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper, else `model`: the wrapper's calls reach it, and a probe
    may run it on one rank alone (the wrapper's forward may start a collective the other ranks never join)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def scratch_dir(ranks: Ranks) -> Path:
    """A private folder for a rank other than 0: its Monitor writes there, never into the shared run folder."""
    return Path(tempfile.mkdtemp(prefix=f"gendiag-rank{ranks.rank}-"))


def remove_scratch(folder: Path) -> None:
    """Remove a rank's scratch folder (made by `scratch_dir`) once its Monitor has closed its sinks."""
    shutil.rmtree(folder)


def quiet(line: str) -> None:
    """The announcement of a rank other than 0: nothing (rank 0 announces for the run)."""


# -- combining the probes' statistics ---------------------------------------------------------------------------

Extract = Callable[[Probe, ProbeContext], Any]
Absorb = Callable[[Probe, ProbeContext, list[Any]], str | None]
SAMPLES_SEED = 53  # the reservoir that draws, from every rank's last samples, those rank 0 compares with the data


def _loss_by_t_extract(probe: Any, ctx: ProbeContext) -> dict[str, Any]:
    """The per-time loss buffers of this rank (pending steps folded in first), on the CPU."""
    bins = probe.bins
    bins.flush(ctx.facts.get("schedule"))
    return {"chunks": [chunk.cpu() for chunk in bins.chunks], "chunk_steps": list(bins.chunk_steps),
            "current": bins.current.cpu(), "current_count": bins.current_count, "scale": bins.scale,
            "has_target": bins.has_target, "added": bins.added}


def _loss_by_t_absorb(probe: Any, ctx: ProbeContext, ranks: list[dict[str, Any]]) -> str | None:
    """Add every other rank's per-time counts, sums and sums of squares into rank 0's, chunk by chunk; returns why
    they could not be added (the ranks' chunks do not line up, or their time scales differ), or None."""
    bins, mine = probe.bins, ranks[0]
    for rank, other in enumerate(ranks[1:], start=1):
        if other["chunk_steps"] != mine["chunk_steps"] or other["current_count"] != mine["current_count"]:
            return (f"loss_by_t: rank {rank} reported steps {other['chunk_steps'][:1]}... in {len(other['chunks'])} "
                    f"chunks against rank 0's {len(mine['chunks'])}; the per-time loss is rank 0's alone")
        if other["scale"] != mine["scale"]:
            return (f"loss_by_t: rank {rank} scaled t by {other['scale']} and rank 0 by {mine['scale']}; the "
                    f"per-time loss is rank 0's alone")
    for index in range(len(bins.chunks)):
        bins.chunks[index] = sum((other["chunks"][index].to(bins.chunks[index]) for other in ranks[1:]),
                                 bins.chunks[index])
    bins.current = sum((other["current"].to(bins.current) for other in ranks[1:]), bins.current)
    bins.has_target = any(other["has_target"] for other in ranks)
    bins.added = sum(other["added"] for other in ranks)
    return None


def _data_repr_extract(probe: Any, ctx: ProbeContext) -> dict[str, Any]:
    """The data and source batches this rank's data-representation probe kept (a few rows each, on the CPU)."""
    return {role: {"batches": list(kept.batches), "offered": kept.offered} for role, kept in probe.kept.items()}


def _data_repr_absorb(probe: Any, ctx: ProbeContext, ranks: list[dict[str, Any]]) -> str | None:
    """Rank 0's kept batches become every rank's: each rank's thinned alike (every other batch dropped, so that
    each still spans the run) until together they fit one rank's capacity, then interleaved in the order they were
    offered; returns why not where the ranks' rows differ in shape."""
    for role, kept in probe.kept.items():
        shapes = {tuple(batch.shape[1:]) for other in ranks for batch in other[role]["batches"]}
        if len(shapes) > 1:
            return f"data_repr: the ranks' {role} rows differ in shape {sorted(shapes)}; its checks are rank 0's"
    for role, kept in probe.kept.items():
        lists = [other[role]["batches"] for other in ranks]
        while sum(map(len, lists)) > kept.capacity and any(len(batches) > 1 for batches in lists):
            lists = [batches[::2] for batches in lists]
        merged = [batch for group in zip_longest(*lists) for batch in group if batch is not None]
        kept.batches = merged[::-(-len(merged) // kept.capacity)] if merged else []
        kept.offered = sum(other[role]["offered"] for other in ranks)
    return None


def _kept(reservoir: Reservoir | None) -> dict[str, Any] | None:
    """What `reservoir` holds, for another process (None where this rank made none)."""
    return None if reservoir is None else reservoir.kept()


def _merged(reservoir: Reservoir | None, parts: list[dict[str, Any] | None]) -> Reservoir | None:
    """`reservoir` (rank 0's, made here where rank 0 has none) holding a uniform sample of the rows every rank's
    reservoir of the same store was offered; None where no rank has one."""
    present = [part for part in parts if part is not None]
    if not present:
        return reservoir
    if reservoir is None:
        reservoir = Reservoir(present[0]["capacity"], seed=present[0]["seed"])
    reservoir.merge(present)
    return reservoir


def _shapes_differ(stores: dict[str, list[dict[str, Any] | None]]) -> str | None:
    """The first store whose ranks' rows differ in shape, with those shapes, or None."""
    for store, parts in stores.items():
        shapes = {part["shape"] for part in parts if part is not None and part["seen"]}
        if len(shapes) > 1:
            return f"the ranks' {store} rows differ in shape {sorted(shapes)}"
    return None


def _inputs_extract(probe: Any, ctx: ProbeContext) -> dict[str, Any]:
    """The input rows this rank's inputs probe kept (training and sampling calls per network, with their times;
    data and source rows), on the CPU, and which EMA copy each network was sampled through."""
    return {"train": {name: kept.kept() for name, kept in probe._train.items()},
            "sampling": {name: kept.kept() for name, kept in probe._sampling.items()},
            "data": _kept(probe._data), "source": _kept(probe._source), "through": dict(probe._through)}


def _inputs_absorb(probe: Any, ctx: ProbeContext, ranks: list[dict[str, Any]]) -> str | None:
    """Each of rank 0's reservoirs of input rows becomes a uniform sample of every rank's rows of the same network
    and mode (a network recorded on other ranks only is added); returns why not where the ranks' rows differ in
    shape."""
    stores = {f"{mode} input ({name})": [other[mode].get(name) for other in ranks]
              for mode in ("train", "sampling") for name in dict.fromkeys(n for o in ranks for n in o[mode])}
    stores.update({role: [other[role] for other in ranks] for role in ("data", "source")})
    differ = _shapes_differ(stores)
    if differ is not None:
        return f"inputs: {differ}; its comparison is rank 0's"
    for mode, store in (("train", probe._train), ("sampling", probe._sampling)):
        for name in dict.fromkeys(n for other in ranks for n in other[mode]):
            store[name] = _merged(store.get(name), [other[mode].get(name) for other in ranks])
    probe._data = _merged(probe._data, [other["data"] for other in ranks])
    probe._source = _merged(probe._source, [other["source"] for other in ranks])
    for other in ranks[1:]:
        for name, via in other["through"].items():
            probe._through.setdefault(name, via)
    probe._cache = None
    return None


def _sampling_calls_extract(probe: Any, ctx: ProbeContext) -> dict[str, Any]:
    """The times this rank's watched networks were called with, per network: training times kept and one median
    time per sampling call."""
    return {name: {"train": coverage.train.kept(), "sampling": coverage.sampling.kept()}
            for name, coverage in probe._coverage.items()}


def _sampling_calls_absorb(probe: Any, ctx: ProbeContext, ranks: list[dict[str, Any]]) -> str | None:
    """Rank 0's times per network become a uniform sample of every rank's (training and sampling alike), so that
    `t-range-untrained` sets the sampler's times against what training drew on any rank; the sampling blocks it
    follows stay rank 0's (a sampler's bug shows in every block)."""
    for name in dict.fromkeys(n for other in ranks for n in other):
        coverage = probe._coverage.setdefault(name, TimeCoverage())
        coverage.train.merge([other[name]["train"] for other in ranks if name in other])
        coverage.sampling.merge([other[name]["sampling"] for other in ranks if name in other])
    probe._cache = None
    return None


def _samples_vs_data_extract(probe: Any, ctx: ProbeContext) -> dict[str, Any]:
    """The data rows this rank's samples-against-data probe kept and the last samples it was shown, on the CPU."""
    against = probe.against
    return {"data": _kept(against.data), "samples": against.samples, "step": against.samples_step,
            "shape": probe.shape}


def _samples_vs_data_absorb(probe: Any, ctx: ProbeContext, ranks: list[dict[str, Any]]) -> str | None:
    """Rank 0 compares the last samples of every rank that observed some (at most as many as one rank keeps, each
    sample equally likely, from a reservoir of its own seed) with a uniform sample of every rank's data rows;
    returns why not where the ranks' data rows or samples differ in shape or their last samples are of different
    steps."""
    differ = _shapes_differ({"data": [other["data"] for other in ranks]})
    if differ is not None:
        return f"samples_vs_data: {differ}; its comparison is rank 0's"
    shown = [other for other in ranks if other["samples"] is not None]
    widths, steps = {other["samples"].shape[1] for other in shown}, {other["step"] for other in shown}
    if len(widths) > 1 or len(steps) > 1:
        return (f"samples_vs_data: the ranks' last samples have {sorted(widths)} values each, observed at steps "
                f"{sorted(steps)}; its comparison is rank 0's")
    data = _merged(probe.against.data, [other["data"] for other in ranks])
    samples = None
    if shown:
        kept = Reservoir(samples_kept(widths.pop()), seed=SAMPLES_SEED)
        for other in shown:
            kept.add(other["samples"])
        samples = kept.rows
    probe.against.combined(data, samples, steps.pop() if steps else None)
    probe.shape = probe.shape or next((other["shape"] for other in shown if other["shape"] is not None), None)
    return None


def _distributed_extract(probe: Any, ctx: ProbeContext) -> Any:
    return probe.fingerprints()


def _distributed_absorb(probe: Any, ctx: ProbeContext, ranks: list[Any]) -> None:
    probe.everyone = ranks
    return None


COMBINERS: dict[str, tuple[Extract, Absorb]] = {
    "loss_by_t": (_loss_by_t_extract, _loss_by_t_absorb),
    "data_repr": (_data_repr_extract, _data_repr_absorb),
    "inputs": (_inputs_extract, _inputs_absorb),
    "sampling_calls": (_sampling_calls_extract, _sampling_calls_absorb),
    "samples_vs_data": (_samples_vs_data_extract, _samples_vs_data_absorb),
    "distributed": (_distributed_extract, _distributed_absorb),
}


def combine(probes: list[Probe], ctx: ProbeContext, ranks: Ranks, complete: bool,
            last_step: int | None) -> tuple[list[str], list[str]]:
    """Collective (every rank must call it once, at `finish`): every rank's combinable statistics to every rank,
    folded into rank 0's probes, unless the ranks' runs ended apart (one stopped early while another finished, or
    at another step: their statistics need not line up; every rank stopped at one step, as on a live check's stop,
    is combined). Returns (the probes combined across ranks, one line per probe that could not be) on rank 0,
    ([], []) elsewhere."""
    present = ranks_with_monitor(ranks)
    if present < ranks.world:
        missed = [f"only {present} of the {ranks.world} ranks made this Monitor, so none of them was asked for its "
                  f"statistics; every probe judged what rank 0 saw"]
        _note(probes, [], missed)
        return [], missed
    ends: list[Any] = [None] * ranks.world
    dist.all_gather_object(ends, (complete, last_step))
    if len(set(ends)) > 1:
        return [], []
    everyone = _gathered(probes, ctx, ranks)
    if not ranks.writes:
        return [], []
    combined, missed = [], []
    for probe in probes:
        if probe.name not in COMBINERS:
            continue
        why = _absorbed(probe, ctx, everyone)
        if why is None:
            combined.append(probe.name)
        else:
            missed.append(why)
    _note(probes, combined, missed)
    return combined, missed


def checks_together(ranks: Ranks) -> bool:
    """Whether every rank made this Monitor, so that its live checks can combine the ranks' statistics: fixed once,
    by the first rank to ask (every rank gets the same answer, without a collective). Asked at the first step a live
    check may come, when every rank of a data-parallel loop has long made its Monitor."""
    return _fixed_count(ranks, "live") == ranks.world


def combined_view(probes: list[Probe], ctx: ProbeContext, ranks: Ranks) -> list[tuple[Probe, Probe]] | None:
    """Collective (every rank calls it at the same live check): every rank's combinable statistics, folded on rank 0
    into copies of its probes, so that a live check judges every rank's data while the probes' own state is combined
    once, at `finish`. Returns on rank 0 (probe, what to ask for its findings: the combined copy, or the probe itself
    where its statistics could not be combined); None elsewhere."""
    everyone = _gathered(probes, ctx, ranks)
    if not ranks.writes:
        return None
    view = []
    for probe in probes:
        asked = probe
        if probe.name in COMBINERS:
            try:
                copied = copy.deepcopy(probe)
            except Exception:  # a state that cannot be copied (a tensor in a graph): this check judges rank 0's
                copied = None  # rows for this probe; `finish` combines the probe itself and says if it cannot
            if copied is not None and _absorbed(copied, ctx, everyone) is None:
                asked = copied
        view.append((probe, asked))
    return view


def _gathered(probes: list[Probe], ctx: ProbeContext, ranks: Ranks) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Collective: every rank's (extracts of its combinable probes, the errors of those whose extract raised)."""
    mine: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for probe in probes:
        if probe.name in COMBINERS:
            try:
                mine[probe.name] = COMBINERS[probe.name][0](probe, ctx)
            except Exception as error:  # one probe's state must not cost the others their combining
                failed[probe.name] = f"{type(error).__name__}: {error}"
    everyone: list[Any] = [None] * ranks.world
    dist.all_gather_object(everyone, (mine, failed))
    return everyone


def _absorbed(probe: Probe, ctx: ProbeContext, everyone: list[tuple[dict[str, Any], dict[str, str]]]) -> str | None:
    """Fold every rank's extract into `probe`; returns why it could not be (a rank lacks it, or absorbing refused or
    raised), or None."""
    lacking = [rank for rank, (states, _) in enumerate(everyone) if probe.name not in states]
    if lacking:
        errors = sorted({errors[probe.name] for _, errors in everyone if probe.name in errors})
        why = f"raised {'; '.join(errors)}" if errors else "was switched off"
        return f"{probe.name}: on ranks {lacking} it {why}; its results are rank 0's alone"
    try:
        return COMBINERS[probe.name][1](probe, ctx, [states[probe.name] for states, _ in everyone])
    except Exception as error:  # as above: the report names the probe and the error
        return f"{probe.name}: combining raised {type(error).__name__}: {error}; its results are rank 0's alone"


def _note(probes: list[Probe], combined: list[str], missed: list[str]) -> None:
    """Tell the multi-process probe what was combined, for its section of the report."""
    for probe in probes:
        if probe.name == "distributed":
            probe.combined, probe.missed = [name for name in combined if name != "distributed"], missed


# -- the runner under torchrun ----------------------------------------------------------------------------------

def launched_by_torchrun() -> bool:
    """Whether torchrun (or `python -m torch.distributed.run`) started this process: it sets these variables."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def start_process_group(device: torch.device) -> bool:
    """Start the default process group from torchrun's environment (gloo on the CPU, NCCL on CUDA) when torchrun
    launched this process and no group exists yet; returns whether it started one (the caller then ends it)."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return False
    if not dist.is_available():
        raise RuntimeError("gendiag run: launched by torchrun, but this torch has no torch.distributed")
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def rank_seed(seed: int, ranks: Ranks | None) -> int:
    """A seed of this rank's own, so that ranks draw different data and noise; `seed` itself in one process."""
    return seed if ranks is None else seed * ranks.world + ranks.rank


def share_run_dir(run_dir: Path | None, ranks: Ranks) -> Path:
    """Rank 0's run folder, on every rank (rank 0 passes it, the others None)."""
    return Path(from_rank_0(str(run_dir) if ranks.writes else None))


def same_start(modules: dict[str, torch.nn.Module]) -> None:
    """Give every rank rank 0's parameters and buffers, as DistributedDataParallel does when it wraps a model."""
    for module in modules.values():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(optimizer: torch.optim.Optimizer, world: int) -> None:
    """Before each step of `optimizer`, replace its parameters' gradients by their mean over the ranks (what
    DistributedDataParallel does during backward), so that a recipe written for one process trains data-parallel."""

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in opt.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                    param.grad.div_(world)

    optimizer.register_step_pre_hook(hook)


def end_process_group() -> None:
    """End the process group `start_process_group` started."""
    dist.destroy_process_group()


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Collective: for each flag, whether it holds on any rank (so that every rank takes the same branch)."""
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    values = torch.tensor([1.0 if flag else 0.0 for flag in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(value) for value in values.tolist())


def from_rank_0(value: Any) -> Any:
    """Collective: rank 0's `value` (any picklable object), on every rank."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]

"""How many threads torch uses in one run of `gendiag run`.

torch's own default depends on its build (with MKL, the machine's physical cores; with OpenMP alone, the logical
CPUs) and knows nothing of a container's CPU quota. Too many threads for the cores actually free is slow: each of
torch's threads waits for the others at every operation, and a run beside other work can take ten times as long
as it does on one thread. The thread count also changes the order in which floating-point sums are taken, so a
run is reproducible bit for bit only for a fixed seed *and* thread count (a GAN's trajectory, and the modes it
finds, can differ between 1 and 2 threads); hence one fixed, recorded count per run.

The default is the number of physical cores this process may run on: the CPUs in its affinity mask
(`taskset`, a cluster job's cpuset), counted once per physical core (hyper-thread siblings share one), and no
more than a container's CPU quota (cgroup v2 `cpu.max`). An explicit `OMP_NUM_THREADS` in the environment wins
over that, since whoever set it knows what else runs on the machine; `run.threads` in the case (or
`gendiag run --threads N`) wins over both."""

from __future__ import annotations

import math
import os
from pathlib import Path

CPU_TOPOLOGY = Path("/sys/devices/system/cpu")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def default_threads() -> int:
    """`OMP_NUM_THREADS` when it is set to a positive integer, else `physical_cores()`."""
    told = os.environ.get("OMP_NUM_THREADS", "").strip()
    if told.isdigit() and int(told) > 0:
        return int(told)
    return physical_cores()


def physical_cores() -> int:
    """Physical cores among the CPUs this process may use, capped by the container's CPU quota; at least 1."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        siblings = CPU_TOPOLOGY / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        # without a topology (not Linux, or a restricted /sys) each logical CPU counts as a core
        cores.add(siblings.read_text().strip() if siblings.is_file() else str(cpu))
    quota = _cgroup_quota()
    return max(1, min(len(cores), quota) if quota is not None else len(cores))


def _cgroup_quota() -> int | None:
    """CPUs a cgroup v2 quota allows (rounded up), or None when there is no quota."""
    if not CGROUP_CPU_MAX.is_file():
        return None
    fields = CGROUP_CPU_MAX.read_text().split()
    if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit() or int(fields[1]) == 0:
        return None  # "max 100000": no quota
    return max(1, math.ceil(int(fields[0]) / int(fields[1])))


def busy_note(threads: int, load: float | None = None, cores: int | None = None) -> str | None:
    """A note for the user when `threads` (> 1) torch threads will share the cores with other work: the 1-minute
    load average (or `load`), less the one core this process itself keeps busy while it loads the case, shows at
    least one whole core taken by other work and fewer idle cores than threads. There fewer threads is often much
    faster."""
    if threads <= 1 or not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0] if load is None else load
    cores = physical_cores() if cores is None else cores
    others = load - 1.0
    if others < 1.0 or cores - others >= threads:
        return None
    return (f"{threads} torch threads on {cores} cores with a load average of {load:.1f} beside this run; on a busy "
            f"machine --threads 1 can be several times faster (results then differ from those on {threads} threads)")

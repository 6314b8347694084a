"""`gendiag check-sampler` on 2-D targets (issue 26: at most 10 s on one CPU core): the whole command, from
starting Python to the verdict, for the project's own samplers (every property holds) and for faulty ones (a failing
property is also shrunk), at the default 5 examples per property.

Each run is a fresh `python -m gendiag.cli check-sampler ...` with OMP_NUM_THREADS=1 (torch on one thread); the
figure is its CPU time (user + system, from the child's rusage), which a busy machine does not inflate as it does
wall time; median over repetitions, spread max − min."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks import median_row

ROOT = Path(__file__).resolve().parent.parent
GOAL = 10.0

SAMPLERS = textwrap.dedent('''
    import torch

    from reference_models.ddpm import Schedule, ancestral_sample, ddim_sample


    def ddpm(eps_fn, x_T, betas, steps, generator):
        visited = torch.linspace(len(betas) - 1, 0, steps).round().long().flip(0).unique()
        abar = torch.cumprod(1 - betas, 0)[visited]
        new_betas = 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])
        return ancestral_sample(lambda x, t: eps_fn(x, visited[t.long()].to(x.dtype)), Schedule(new_betas), x_T,
                                generator=generator)


    def ddim(eps_fn, x_T, betas, steps):
        return ddim_sample(eps_fn, Schedule(betas), x_T, steps)
''')


def _cpu_seconds(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    """CPU seconds (user + system) of one child process running `args`, and its exit status."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.returncode


def run(quick: bool = False) -> list[dict]:
    repeats = 1 if quick else 3
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        samplers = Path(folder) / "samplers.py"
        samplers.write_text(SAMPLERS)
        cases = [("flow, Euler (reference_models.solvers)", ["reference_models.solvers:euler"], 0),
                 ("flow, Heun --order 2", ["reference_models.solvers:heun", "--order", "2"], 0),
                 ("flow, frozen state (fails)", ["tests/user_samplers.py:frozen"], 1),
                 ("flow, from 1 to 0 (fails)", ["tests/user_samplers.py:backwards"], 1),
                 ("ddpm, strided ancestral (reference_models.ddpm)", [f"{samplers}:ddpm", "--kind", "ddpm"], 0),
                 ("ddim (reference_models.ddpm)", [f"{samplers}:ddim", "--kind", "ddim"], 0)]
        for name, args, expected in cases:
            seconds = []
            for _ in range(repeats):
                cpu, status = _cpu_seconds([sys.executable, "-m", "gendiag.cli", "check-sampler", *args], ROOT, env)
                if status != expected:
                    raise RuntimeError(f"bench_check_sampler: {name} exited {status}, expected {expected}")
                seconds.append(cpu)
            rows.append(median_row("check_sampler", f"{name}: CPU time of the whole command", seconds, "s",
                                   f"<= {GOAL:g} s", max(seconds) <= GOAL,
                                   f"2-D targets, 5 examples per property, one torch thread, from Python's start "
                                   f"(imports included) to the verdict; exit status {expected}; {repeats} runs"))
    return rows

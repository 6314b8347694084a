"""Probe overhead: the same flow-matching loop, same seed, bare and with the Monitor (default probes, then every
probe), per-step time ratio at probe intervals 1, 4 and 16, on 2D points and on 4,096-dimensional flattened
images; and the extra memory (resident memory a fresh process gains over the loop, minus the bare loop's gain).

Configurations are interleaved (bare, default, all, bare, ...) in one process, each block timed over the same
number of steps; the ratio is per repetition, the median and the min-max spread are reported."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gendiag import Monitor
from gendiag.probes import select_probes
from reference_models.flow_matching import flow_matching_loss
from reference_models.nets import VelocityMLP
from reference_models.paths import LinearPath

MMAP_THRESHOLD = 64 * 1024  # bytes: glibc serves larger blocks with mmap and returns them when freed
SHAPES = {"2d": dict(dim=2, hidden=256, depth=4, batch=256), "flat4096": dict(dim=4096, hidden=512, depth=2, batch=64)}


def _loop(shape: str, probes: str | None, every: int, steps: int, run_dir: Path | None) -> float:
    """Seconds per step of the training loop (after a warm-up), with or without a Monitor."""
    spec = SHAPES[shape]
    torch.manual_seed(0)
    model = VelocityMLP(dim=spec["dim"], hidden=spec["hidden"], depth=spec["depth"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    data = torch.randn(4096, spec["dim"], generator=gen) * 0.5 + 1.0
    path = LinearPath()
    mon = None if probes is None else Monitor(run_dir, task="flow", probes=probes, every=every)
    if mon is not None:
        mon.watch(model)
    warmup = 5
    for step in range(1, steps + warmup + 1):
        if step == warmup + 1:
            start = time.perf_counter()
        index = torch.randint(0, len(data), (spec["batch"],), generator=gen)
        x1, x0 = data[index], torch.randn(spec["batch"], spec["dim"], generator=gen)
        batch = flow_matching_loss(model, x0, x1, path, generator=gen)
        optimizer.zero_grad(set_to_none=True)
        batch.loss.backward()
        optimizer.step()
        if mon is not None:
            if step % 50 == 1:
                mon.observe_data(x1, role="data")
                mon.observe_data(x0, role="source")
            mon.step(step, batch.loss, t=batch.t, per_sample_loss=batch.per_sample_loss)
    seconds = (time.perf_counter() - start) / steps
    if mon is not None:
        mon.ctx.tb.close()  # the report is not part of the step; closing releases the event file
    return seconds


def _resident_mb() -> float:
    """This process's resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("bench_overhead: /proc/self/status has no VmRSS line")


def _loop_memory_mb(shape: str, probes: str | None, steps: int) -> float:
    """Resident memory a fresh process gains over `steps` steps of the loop, after its imports: the peak of
    ru_maxrss is set by the imports themselves (torch, matplotlib, tensorboard) and hides what the probes keep.

    glibc's malloc is given a fixed mmap threshold: with its default, sliding one, the freed megabyte-sized
    activations of the 4,096-D loop go back to the heap, and any small block a probe keeps above them (a step's
    `t`) pins that heap in resident memory: 50-150 MB that varied from run to run and that nothing held."""
    code = ("import json, sys, tempfile, pathlib; sys.path.insert(0, %r); "
            "from benchmarks.bench_overhead import _loop, _resident_mb; "
            "d = pathlib.Path(tempfile.mkdtemp()); before = _resident_mb(); _loop(%r, %r, 1, %d, d); "
            "print(json.dumps(_resident_mb() - before))"
            % (str(Path(__file__).resolve().parent.parent), shape, probes, steps))
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    return float(done.stdout.strip().splitlines()[-1])


def _probe_sets() -> dict[str, str]:
    """The probe sets to time: "default", and "all" only where it holds more probes than the default set."""
    names = {choice: [probe.name for probe in select_probes(choice, task="flow")] for choice in ("default", "all")}
    return {"default": "default", "all": "all" if names["all"] != names["default"] else "default"}


def _same_set_note(probes: str, measured_as: str) -> str:
    return "" if probes == measured_as else "; every flow probe is in the default set, so this is the default row's run"


def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    repetitions = 3 if quick else 7
    sets = _probe_sets()
    measured = sorted(set(sets.values()))
    for shape in SHAPES:
        steps = (20 if quick else 60) if shape == "flat4096" else (40 if quick else 150)
        for every in (1, 4, 16):
            ratios: dict[str, list[float]] = {probes: [] for probes in measured}
            with tempfile.TemporaryDirectory() as tmp:
                for repetition in range(repetitions):
                    bare = _loop(shape, None, every, steps, None)
                    for probes in ratios:
                        run_dir = Path(tmp) / f"{probes}-{repetition}"
                        ratios[probes].append(_loop(shape, probes, every, steps, run_dir) / bare)
            for probes, measured_as in sets.items():
                values = ratios[measured_as]
                goal = "≤ 1.10× (Cockpit economy: 1.51× at 1, 1.04× at 16)" if probes == "default" else "reported"
                median = statistics.median(values)
                rows.append({
                    "benchmark": "probe overhead", "figure": f"{shape}, {probes} probes, every {every}",
                    "median": median, "spread": max(values) - min(values), "unit": "× bare step", "goal": goal,
                    "met": (median <= 1.10) if (probes == "default" and every == 1 and shape == "2d") else None,
                    "note": f"{repetitions} interleaved repetitions of {steps} steps; spread = max − min"
                            + _same_set_note(probes, measured_as),
                })
        memory_steps = 60 if shape == "flat4096" else 150
        bare_mb = _loop_memory_mb(shape, None, memory_steps)
        gained = {probes: _loop_memory_mb(shape, probes, memory_steps) - bare_mb for probes in measured}
        for probes, measured_as in sets.items():
            rows.append({
                "benchmark": "probe memory", "figure": f"{shape}, {probes} probes, every 1",
                "median": gained[measured_as], "spread": 0.0,
                "unit": "MB resident over bare", "goal": "reported", "met": None,
                "note": f"one fresh process each; resident memory gained over {memory_steps} steps after the imports, "
                        f"minus the bare loop's gain ({bare_mb:.0f} MB); malloc's mmap threshold fixed at 64 KiB"
                        + _same_set_note(probes, measured_as),
            })
    return rows


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))

"""Probe overhead: the same flow-matching loop, same seed, bare and with the Monitor (default probes, then every
probe), per-step time ratio at probe intervals 1, 4 and 16, on 2D points (pointcloud_moons' network and batch, and
the same network on a quarter of the batch) and on 4,096-dimensional flattened images; and the extra memory
(resident memory a fresh process gains over the loop, minus the bare loop's gain).

The loops being compared live side by side in one process and take turns in short blocks of `BLOCK` steps
(A B B A A B ...), so a slow spell of the machine lands on both alike; each repetition's ratio is the monitored
loop's total time over the bare loop's, the Monitor's periodic work (flushes, batched TensorBoard writes, the
every-20-steps update measurement) included, since the monitored loop runs on from block to block. The median
over repetitions and the min-max spread are reported: `GOAL_REPETITIONS` where a goal is set (the 2-D loop at
interval 1), `REPETITIONS` elsewhere (reported rows), which keeps the default benchmark set within 15 minutes.

The probe-set rows run without live checks (`check_every=None`), as before live checks existed. Two rows add live
checks to the default probes: every `CHECK_EVERY` steps with no wall-time floor (what one round of every probe's
rules costs, at the rate a fast loop would ask), and on the Monitor's default schedule (also `CHECK_SECONDS`
apart), which the issue-20 goal is set on. Those two loops keep one Monitor over every repetition (`RUN_ON`): one
run of repetitions × steps steps whose live checks are spaced by its own time, not the other loops' turns
(`TrainingLoop.own_clock`), and their figure is the whole run's time over the bare loops'.

Issue 21: a flush-interval sweep (`FLUSH_SWEEP`: the default probes at interval 1 with `flush_every` = 1, 10, 50,
200, on the 2-D loop), and a CUDA row (`cuda_rows`: an image diffusion step, batch 64, bare and monitored, with
`torch.cuda.set_sync_debug_mode("error")` over the monitored loop's steps between flushes). Where no GPU is lent
(`torch.cuda.is_available()` false) the CUDA row says "no GPU measured" instead of a figure."""

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

from benchmarks import median_row
from gendiag import Monitor
from gendiag.live import CHECK_EVERY, CHECK_SECONDS
from gendiag.pending import FLUSH_EVERY
from gendiag.probes import select_probes
from reference_models.flow_matching import flow_matching_loss
from reference_models.nets import VelocityMLP
from reference_models.paths import LinearPath

MMAP_THRESHOLD = 64 * 1024  # bytes: glibc serves larger blocks with mmap and returns them when freed
# "2d" is pointcloud_moons' own network and batch, the loop the goal is set on; "2d-b256" is the same network on a
# quarter of the batch, where the Monitor's fixed per-step cost weighs four times as much.
SHAPES = {"2d": dict(dim=2, hidden=256, depth=4, batch=1024), "2d-b256": dict(dim=2, hidden=256, depth=4, batch=256),
          "flat4096": dict(dim=4096, hidden=512, depth=2, batch=64)}
BLOCK = 10  # steps each loop runs before the other takes its turn
GOAL_REPETITIONS, REPETITIONS = 5, 3
NO_MONITOR = "none"  # a second loop without a Monitor: its ratio to the first is the measurement's own noise
WARMUP = 5
LIVE = "default+live"  # the default probes with live checks every CHECK_EVERY steps, no wall-time floor
LIVE_DEFAULT = "default+live-defaults"  # the same with the Monitor's default schedule (CHECK_SECONDS apart too)
# Live-check loops run on over the repetitions: a check's cost is per check, and the schedule spaces checks by the
# run's own time (at most CHECK_SHARE of it), so a fresh 150-step run (4 s) would charge the first check as if
# the run ended there.
RUN_ON = {LIVE, LIVE_DEFAULT}
FLUSH_SWEEP = {f"default, flush every {k}": k for k in (1, 10, 50, 200)}  # loop name -> the Monitor's flush_every


class TrainingLoop:
    """One flow-matching training loop (its own model, optimizer, data and generator, all seeded alike), with or
    without a Monitor, that can be advanced a few steps at a time."""

    def __init__(self, shape: str, probes: str | None, every: int, run_dir: Path | None) -> None:
        spec = SHAPES[shape]
        torch.manual_seed(0)
        self.batch, self.dim = spec["batch"], spec["dim"]
        self.model = VelocityMLP(dim=spec["dim"], hidden=spec["hidden"], depth=spec["depth"])
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.gen = torch.Generator().manual_seed(1)
        self.data = torch.randn(4096, spec["dim"], generator=self.gen) * 0.5 + 1.0
        self.path = LinearPath()
        schedules = {LIVE: dict(check_every=CHECK_EVERY, check_seconds=0.0, announce=lambda line: None),
                     LIVE_DEFAULT: dict(announce=lambda line: None)}
        live = schedules.get(probes, dict(check_every=None))
        flush_every = FLUSH_SWEEP.get(probes, FLUSH_EVERY)
        named = probes in schedules or probes in FLUSH_SWEEP
        self.mon = None if probes is None else Monitor(run_dir, task="flow", probes="default" if named else probes,
                                                       every=every, flush_every=flush_every, **live)
        self.own_seconds, self._advancing_since = 0.0, None
        if self.mon is not None:
            self.mon.watch(self.model)
            if self.mon._live is not None:  # live checks are spaced by this loop's own time, as in a run alone
                self.mon._live.clock = self.own_clock
                self.mon._live._last_time = self.own_clock()
        self.step = 0
        self.advance(WARMUP)

    def own_clock(self) -> float:
        """Seconds this loop has run so far, not counting the other loops' turns: the clock of its live checks.
        On the wall clock, a loop taking turns with five others would see its checks' wall-time floor and share
        (`gendiag.live.CHECK_SHARE`) pass six times as fast as in a run alone, and check six times as often."""
        running = 0.0 if self._advancing_since is None else time.perf_counter() - self._advancing_since
        return self.own_seconds + running

    def advance(self, steps: int) -> float:
        """Run `steps` training steps; the seconds they took."""
        start = self._advancing_since = time.perf_counter()
        for _ in range(steps):
            self.step += 1
            index = torch.randint(0, len(self.data), (self.batch,), generator=self.gen)
            x1, x0 = self.data[index], torch.randn(self.batch, self.dim, generator=self.gen)
            batch = flow_matching_loss(self.model, x0, x1, self.path, generator=self.gen)
            self.optimizer.zero_grad(set_to_none=True)
            batch.loss.backward()
            self.optimizer.step()
            if self.mon is not None:
                if self.step % 50 == 1:
                    self.mon.observe_data(x1, role="data")
                    self.mon.observe_data(x0, role="source")
                self.mon.step(self.step, batch.loss, t=batch.t, per_sample_loss=batch.per_sample_loss)
        elapsed = time.perf_counter() - start
        self.own_seconds, self._advancing_since = self.own_seconds + elapsed, None
        return elapsed

    def close(self) -> None:
        if self.mon is not None:
            self.mon.close()  # the report is not part of the step; closing releases the event file


def interleaved_ratios(shape: str, probes: list[str], every: int, steps: int, repetitions: int,
                       run_dir: Path) -> dict[str, list[float]]:
    """Per repetition, each probe set's loop time over the bare loop's, all loops taking turns in blocks of
    `BLOCK` steps (the order reversed every other block) for `steps` steps each. `NO_MONITOR` among `probes` is a
    second bare loop. The loops in `RUN_ON` keep one Monitor over every repetition (one run of repetitions × steps
    steps); `whole(name)` of the result holds their time over the bare loops' over the whole run."""
    ratios: dict[str, list[float]] = {name: [] for name in probes}
    carried = {name: TrainingLoop(shape, name, every, run_dir / name) for name in probes if name in RUN_ON}
    totals = {name: [0.0, 0.0] for name in carried}
    for repetition in range(repetitions):
        loops = {None: TrainingLoop(shape, None, every, None)}
        loops.update({name: carried.get(name) or TrainingLoop(shape, None if name == NO_MONITOR else name, every,
                                                              run_dir / f"{name}-{repetition}") for name in probes})
        seconds = dict.fromkeys(loops, 0.0)
        order = list(loops)
        for block in range(steps // BLOCK):
            for name in (order if block % 2 == 0 else order[::-1]):
                seconds[name] += loops[name].advance(BLOCK)
        for name, loop in loops.items():
            if name not in carried:
                loop.close()
        for name in probes:
            ratios[name].append(seconds[name] / seconds[None])
        for name, total in totals.items():
            total[0], total[1] = total[0] + seconds[name], total[1] + seconds[None]
    for name, loop in carried.items():
        loop.close()
        ratios[whole(name)] = [totals[name][0] / totals[name][1], float(loop.mon._live.checks)]
    return ratios


def whole(name: str) -> str:
    """The key of a `RUN_ON` loop's [whole-run ratio, live checks made] in `interleaved_ratios`' result."""
    return f"{name}, whole run"


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
            "from benchmarks.bench_overhead import TrainingLoop, _resident_mb; "
            "d = pathlib.Path(tempfile.mkdtemp()); before = _resident_mb(); "
            "loop = TrainingLoop(%r, %r, 1, d); loop.advance(%d); loop.close(); "
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


def flush_rows(quick: bool) -> list[dict]:
    """The default probes at interval 1 on the 2-D loop, per flush interval of `FLUSH_SWEEP`, side by side."""
    repetitions, steps = (2, 40) if quick else (REPETITIONS, 150)
    with tempfile.TemporaryDirectory() as tmp:
        ratios = interleaved_ratios("2d", list(FLUSH_SWEEP), 1, steps, repetitions, Path(tmp))
    return [median_row("probe overhead", f"2d, {name}, every 1", ratios[name], "× bare step",
                       "reported (issue 21: flush interval sweep)", None,
                       f"batch {SHAPES['2d']['batch']}; {repetitions} repetitions of {steps} steps a loop, the four "
                       f"loops and the bare one taking turns every {BLOCK} steps; no live checks; CPU (on the CPU no "
                       f"call waits for a device, so the flush interval changes little here); spread = max − min")
            for name in FLUSH_SWEEP]


class ImageDiffusionStep:
    """A realistic CUDA step for the GPU row: epsilon-prediction DDPM on 3×32×32 images, batch 64, a small conv
    net, data generated on the device (nothing in the loop itself waits for the GPU)."""

    def __init__(self, monitored: bool, run_dir: Path | None, flush_every: int = FLUSH_EVERY) -> None:
        torch.manual_seed(0)
        device = torch.device("cuda")
        self.device, self.batch, self.steps_total = device, 64, 1000
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(4, 128, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(128, 128, 3, padding=1),
            torch.nn.SiLU(), torch.nn.Conv2d(128, 128, 3, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(128, 3, 3, padding=1)).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=2e-4, fused=True)
        self.alphas = torch.cumprod(1 - torch.linspace(1e-4, 0.02, self.steps_total, device=device), 0)
        self.mon = None
        if monitored:
            self.mon = Monitor(run_dir, task="diffusion", check_every=None, flush_every=flush_every,
                               schedule=self.alphas.cpu(), image_shape=(3, 32, 32))
            self.mon.watch(self.net, t_arg=None, inputs=lambda args, kwargs: (args[0][:, :3], None),
                           optimizer=self.optimizer)
        self.flush_every, self.step = flush_every, 0

    def advance(self, steps: int, sync_check: bool = False) -> float:
        """Run `steps` steps; the seconds they took (the queue drained at both ends). With `sync_check`, every
        step that is not a flush runs under set_sync_debug_mode("error"): a synchronising call raises."""
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            self.step += 1
            flush = self.step == 1 or self.step % self.flush_every == 0
            if sync_check:
                torch.cuda.set_sync_debug_mode(0 if flush else "error")
            x0 = torch.randn(self.batch, 3, 32, 32, device=self.device)
            t = torch.randint(0, self.steps_total, (self.batch,), device=self.device)
            noise = torch.randn_like(x0)
            a = self.alphas[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
            time_plane = (t.float() / self.steps_total).view(-1, 1, 1, 1).expand(-1, 1, 32, 32)
            per_sample = (self.net(torch.cat([xt, time_plane], 1)) - noise).square().mean((1, 2, 3))
            loss = per_sample.mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.mon is not None:
                self.mon.observe_data(x0)
                self.mon.step(self.step, loss, t=t, per_sample_loss=per_sample.detach())
        torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()
        return time.perf_counter() - start


def cuda_rows(quick: bool) -> list[dict]:
    """The CUDA row: the monitored image diffusion step over the bare one (interleaved blocks), and whether
    set_sync_debug_mode("error") passed over the monitored steps between flushes. "no GPU measured" without one."""
    figure = "cuda, image diffusion 3×32×32 batch 64, default probes, every 1, flush every 50"
    if not torch.cuda.is_available():
        return [{"benchmark": "probe overhead", "figure": figure, "median": None, "spread": None,
                 "unit": "× bare step", "goal": "reported (issue 21)", "met": None,
                 "note": "no GPU measured: torch.cuda.is_available() is false on this machine"}]
    repetitions, steps = (2, 100) if quick else (5, 300)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for repetition in range(repetitions):
            bare, monitored = ImageDiffusionStep(False, None), ImageDiffusionStep(True, Path(tmp) / str(repetition))
            bare.advance(WARMUP)
            monitored.advance(WARMUP)
            seconds = [0.0, 0.0]
            for block in range(steps // BLOCK):
                for index in ((0, 1) if block % 2 == 0 else (1, 0)):
                    seconds[index] += (bare, monitored)[index].advance(BLOCK)
            ratios.append(seconds[1] / seconds[0])
            monitored.mon.close()
        checked = ImageDiffusionStep(True, Path(tmp) / "sync-check")
        try:
            checked.advance(2 * FLUSH_EVERY + 10, sync_check=True)
            sync_note = "set_sync_debug_mode('error') passed over the monitored steps between flushes"
            passed = True
        except RuntimeError as error:
            sync_note = f"set_sync_debug_mode('error') raised at step {checked.step}: {str(error).splitlines()[0]}"
            passed = False
        finally:
            torch.cuda.set_sync_debug_mode(0)
        checked.mon.close()
    return [median_row("probe overhead", figure, ratios, "× bare step",
                       "reported; no synchronising call between flushes (issue 21)", passed,
                       f"{torch.cuda.get_device_name()}; {repetitions} repetitions of {steps} steps a loop, taking "
                       f"turns every {BLOCK} steps; {sync_note}; spread = max − min")]


def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    sets = _probe_sets()
    measured = sorted(set(sets.values()))
    for shape in SHAPES:
        steps = (20 if quick else 60) if shape == "flat4096" else (40 if quick else 150)
        batch_note = f"batch {SHAPES[shape]['batch']}; "
        for every in (1, 4, 16):
            repetitions = 2 if quick else GOAL_REPETITIONS if (shape, every) == ("2d", 1) else REPETITIONS
            with tempfile.TemporaryDirectory() as tmp:
                extra = [NO_MONITOR, LIVE, LIVE_DEFAULT] if every == 1 else []
                ratios = interleaved_ratios(shape, measured + extra, every, steps, repetitions, Path(tmp))
            if every == 1:
                rows.append(median_row(
                    "probe overhead", f"{shape}, a second loop without Monitor", ratios[NO_MONITOR], "× bare step",
                    "reported (≈ 1: the measurement's own noise)", None,
                    f"{batch_note}{repetitions} repetitions of {steps} steps a loop, taking turns with the rows above "
                    f"every {BLOCK} steps; spread = max − min"))
            for name, schedule in ((LIVE, f"every {CHECK_EVERY} steps with no wall-time floor"),
                                   (LIVE_DEFAULT, f"on the default schedule (every {CHECK_EVERY} steps and "
                                                  f"{CHECK_SECONDS:g} s apart)")):
                if every != 1:
                    continue
                goal = name == LIVE_DEFAULT and shape == "2d"
                overall, checks = ratios[whole(name)]
                row = median_row(
                    "probe overhead", f"{shape}, default probes + live checks {schedule}, every 1", ratios[name],
                    "× bare step", "≤ 1.10× (issue 20: live checks within the overhead goal)" if goal else "reported",
                    overall <= 1.10 if goal else None,
                    f"{batch_note}one run of {repetitions} × {steps} steps on one Monitor (its live checks spaced by "
                    f"its own time), taking turns with the rows above every {BLOCK} steps; every probe's findings() "
                    f"asked {schedule}; the figure is the whole run's time over the bare loops'; spread = max − min "
                    f"over the {repetitions} stretches; {checks:.0f} live checks in the run")
                rows.append({**row, "median": overall})
            for probes, measured_as in sets.items():
                values = ratios[measured_as]
                on_goal = probes == "default" and shape != "2d-b256"
                goal = "≤ 1.10× (Cockpit economy: 1.51× at 1, 1.04× at 16)" if on_goal else "reported"
                median = statistics.median(values)
                rows.append({
                    "benchmark": "probe overhead", "figure": f"{shape}, {probes} probes, every {every}",
                    "median": median, "spread": max(values) - min(values), "unit": "× bare step", "goal": goal,
                    "met": (median <= 1.10) if (probes == "default" and every == 1 and shape == "2d") else None,
                    "note": f"{batch_note}{repetitions} repetitions of {steps} steps a loop, the loops taking turns "
                            f"every {BLOCK} steps; spread = max − min"
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
                "note": f"{batch_note}one fresh process each; resident memory gained over {memory_steps} steps after "
                        f"the imports, minus the bare loop's gain ({bare_mb:.0f} MB); malloc's mmap threshold fixed at "
                        f"64 KiB"
                        + _same_set_note(probes, measured_as),
            })
    return rows + flush_rows(quick) + cuda_rows(quick)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))

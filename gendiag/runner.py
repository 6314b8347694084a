"""Runs a validated case: a fresh run folder (or the one being resumed), the recipe's training loop with a
Monitor on a fixed number of torch threads, checkpoints, a clean stop on signals and non-finite losses, the
report. A recipe that fails while it builds its data and models leaves no run folder behind."""

from __future__ import annotations

import json
import math
import platform
import shutil
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from gendiag import __version__
from gendiag.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from gendiag.config import Case
from gendiag.distributed import (Ranks, any_rank, average_gradients, current_ranks, end_process_group,
                                 from_rank_0, rank_seed, same_start, share_run_dir, start_process_group)
from gendiag.errors import NonFiniteLoss, RunInterrupted, StoppedOnFinding
from gendiag.live import Announce, check_stop_on
from gendiag.io import atomic_write_json, atomic_write_text
from gendiag.monitor import Monitor
from gendiag.progress import ProgressFn
from gendiag.recipes import Recipe, get_recipe
from gendiag.report import Report
from gendiag.rundir import create_run_dir
from gendiag.threads import default_threads

@dataclass
class Tracked:
    """What a checkpoint holds: the objects whose state makes a resumed run continue exactly."""

    modules: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    generators: dict[str, torch.Generator]


@dataclass
class RunContext:
    """What a recipe gets from the runner: where to write, the seed, the Monitor, and `progress(step, info)`
    to call once per step (it also checkpoints, checks the loss, stops the run on a signal and, with `stop_on`,
    on a finding)."""

    run_dir: Path
    seed: int
    case: Case
    on_progress: ProgressFn = lambda step, info: None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    monitor: Monitor | None = None
    resume: dict[str, Any] | None = None
    stop_on: str | None = None
    announce: Announce | None = None
    ranks: Ranks | None = None  # under torchrun: this process's rank; only rank 0 writes the run folder
    last_step: int = 0
    first_bad_step: int | None = None
    _tracked: Tracked | None = None
    _pending_signal: str | None = None

    def start_monitor(self, task: str, **facts: Any) -> Monitor:
        """The Monitor for this run, with the case's probe settings (on resume, with the metrics so far)."""
        probes = self.case.file.probes
        self.monitor = Monitor(self.run_dir, task=task, probes=probes.set, every=probes.every,
                               strict=probes.strict, resume=self.resume is not None, stop_on=self.stop_on,
                               check_every=probes.check_every or None, check_seconds=probes.check_seconds,
                               flush_every=probes.flush_every,
                               total_steps=int(getattr(self.case.training, "steps", 0)) or None,
                               announce=self.announce, figures=probes.figures, **facts)
        if self.resume is not None:
            self.monitor.table.extend(self.resume["metrics"])
        return self.monitor

    def generator(self, offset: int = 0) -> torch.Generator:
        """A seeded generator for one purpose (offset keeps data, init and sampling streams apart)."""
        return torch.Generator().manual_seed(self.seed * 1000 + offset)

    def track(self, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
              generators: dict[str, torch.Generator]) -> int:
        """Register what a checkpoint must hold; on resume, restore it. Returns the last completed step
        (0 for a fresh run): the training loop continues from the step after it. Under torchrun every rank starts
        from rank 0's weights, averages its gradients with the others' before each step, and draws from its own
        random streams from here on."""
        self._tracked = Tracked(modules, optimizers, generators)
        if self.ranks is not None:
            same_start(modules)
            for optimizer in optimizers.values():
                average_gradients(optimizer, self.ranks.world)
            torch.manual_seed(self.seed)
        if self.resume is None:
            return 0
        state = self.resume
        for kind, objects in (("modules", modules), ("optimizers", optimizers)):
            missing = set(objects) - set(state[kind])
            if missing:
                raise ValueError(f"{self.run_dir / CHECKPOINT}: checkpoint lacks {kind} {sorted(missing)}")
            for name, obj in objects.items():
                obj.load_state_dict(state[kind][name])
        for name, gen in generators.items():
            gen.set_state(state["generators"][name])
        torch.set_rng_state(state["torch_rng"])
        self.last_step = int(state["step"])
        return self.last_step

    @property
    def built(self) -> bool:
        """Whether the recipe has built its data, models and optimizers (`track` was called)."""
        return self._tracked is not None

    def progress(self, step: int, info: dict[str, float]) -> None:
        """End of a training step: show progress, check the losses in `info` (e.g. `loss`, or a GAN's `loss_d`
        and `loss_g`), checkpoint when due, honour a signal, stop when the Monitor says so (`stop_on`: the
        checkpoint is written at that step, where checkpoints are on)."""
        self.last_step = step
        self.on_progress(step, info)
        bad = next(((name, float(value)) for name, value in info.items() if not math.isfinite(float(value))), None)
        signal_name = self._pending_signal
        stop = self.monitor is not None and self.stop_on is not None and self.monitor.should_stop
        if self.ranks is not None:  # every rank takes the same branch at the same step: any rank's bad loss or
            # signal, rank 0's stop (its findings are the run's); one collective a step
            bad_anywhere, signalled, stop = any_rank(bad is not None, signal_name is not None,
                                                     stop and self.ranks.writes)
            bad = bad or (("the loss of another rank", float("nan")) if bad_anywhere else None)
            signal_name = signal_name or ("a signal to another rank" if signalled else None)
        finite = bad is None
        if not finite and self.first_bad_step is None:
            self.first_bad_step = step
            if self.case.file.run.on_nonfinite == "stop":
                raise NonFiniteLoss(f"{bad[0]} became {bad[1]} at step {step}")
        every = self.case.file.run.checkpoint_every
        healthy = finite and self.first_bad_step is None
        if healthy and every and step % every == 0:
            self.save_checkpoint(step)
        if signal_name is not None:
            raise RunInterrupted(signal_name, step)
        if stop:
            severity, code, at = self._stopped_on()
            if healthy and every and step % every:
                self.save_checkpoint(step)
            raise StoppedOnFinding(severity, code, at, self.stop_on)

    def _stopped_on(self) -> tuple[str, str, int]:
        """(severity, code, step) of the finding the Monitor stopped on; under torchrun, rank 0's, on every rank."""
        finding, at = self.monitor.stopped_on if self.monitor.stopped_on is not None else (None, 0)
        mine = None if finding is None else (finding.severity, finding.code, at)
        return mine if self.ranks is None else from_rank_0(mine)

    @property
    def writes(self) -> bool:
        """Whether this process writes the run folder: always, except on the ranks other than 0 under torchrun."""
        return self.ranks is None or self.ranks.writes

    def save_checkpoint(self, step: int) -> None:
        if self._tracked is None or not self.writes:
            return
        tracked = self._tracked
        if self.monitor is not None:
            self.monitor.flush()  # the metrics saved with the checkpoint hold every step up to it
        save_checkpoint(self.run_dir / CHECKPOINT, {
            "step": step,
            "modules": {name: module.state_dict() for name, module in tracked.modules.items()},
            "optimizers": {name: opt.state_dict() for name, opt in tracked.optimizers.items()},
            "generators": {name: gen.get_state() for name, gen in tracked.generators.items()},
            "torch_rng": torch.get_rng_state(),
            "metrics": self.monitor.table.rows() if self.monitor is not None else [],
        })

    def signal_arrived(self, signal_name: str) -> None:
        """A signal handler's hook: inside the training loop, stop at the next step boundary; elsewhere now."""
        if self._tracked is None or self._pending_signal is not None:
            raise RunInterrupted(signal_name, self.last_step)
        self._pending_signal = signal_name


@dataclass
class RunResult:
    run_dir: Path
    report: Report
    results: dict[str, Any]
    seconds: float


def run_case(case: Case, out_root: str | Path | None = None, progress: ProgressFn | None = None,
             resume_dir: Path | None = None, stop_on: str | None = None,
             announce: Announce | None = None) -> RunResult:
    """Train the case end to end and write every artefact into a new run folder (or continue `resume_dir`), on
    `run.threads` torch threads (default: `default_threads()`); torch's thread count is restored afterwards.
    `stop_on` ("warning" or "critical") ends the run at the first live check that finds such a finding, with its
    report; `announce(line)` receives the live announcements (default: stderr)."""
    check_stop_on(stop_on)
    recipe = get_recipe(case.file.recipe, case.path)
    threads = case.file.run.threads or default_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = start_process_group(torch.device("cpu"))
    try:
        return _run(case, recipe, threads, out_root, progress, resume_dir, stop_on, announce)
    finally:
        torch.set_num_threads(previous_threads)
        if started:
            end_process_group()


def _run(case: Case, recipe: Recipe, threads: int, out_root: str | Path | None, progress: ProgressFn | None,
         resume_dir: Path | None, stop_on: str | None, announce: Announce | None) -> RunResult:
    device = torch.device("cpu")
    ranks = current_ranks()
    if ranks is not None and resume_dir is not None:
        raise ValueError(f"gendiag run --resume {resume_dir}: resuming is for one process; run it without torchrun")
    if ranks is not None and not ranks.writes:
        run_dir = share_run_dir(None, ranks)
        resume = None
        header = {"results": {}}
    elif resume_dir is not None:
        run_dir = Path(resume_dir)
        resume = load_checkpoint(run_dir / CHECKPOINT)
        header = _read_header(run_dir)
        header["resumed_from_step"] = int(resume["step"])
        header["threads"], header["device"] = threads, str(device)
    else:
        run_dir = create_run_dir(out_root if out_root is not None else case.file.output.root, case.name)
        resume = None
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(_resolved(case, threads), sort_keys=False))
        header = {
            "case": case.name, "description": case.file.description, "profile": case.profile,
            "seed": case.file.seed, "threads": threads, "device": str(device),
            "started": datetime.now().isoformat(timespec="seconds"),
            "gendiag": __version__, "torch": torch.__version__, "python": platform.python_version(), "results": {},
        }
        if ranks is not None:
            header["ranks"], header["backend"] = ranks.world, ranks.backend
            share_run_dir(run_dir, ranks)
    header["status"] = "running"
    torch.manual_seed(case.file.seed)  # the same on every rank: the models start alike
    context = RunContext(run_dir=run_dir, seed=rank_seed(case.file.seed, ranks), case=case, device=device,
                         on_progress=progress or (lambda step, info: None), resume=resume, stop_on=stop_on,
                         announce=announce, ranks=ranks)
    _write_header(context, header)
    start = time.perf_counter()
    with _signals_to(context):
        try:
            results = recipe.load_run()(case, context)
        except StoppedOnFinding as stop:
            report = _finish_partial(context, header, str(stop))
            return RunResult(run_dir, report, header["results"], time.perf_counter() - start)
        except (RunInterrupted, NonFiniteLoss, KeyboardInterrupt) as error:
            reason = f"stopped by SIGINT at step {context.last_step}" if isinstance(error, KeyboardInterrupt) \
                else f"stopped: {error}" if isinstance(error, NonFiniteLoss) else str(error)
            report = _finish_partial(context, header, reason)
            if isinstance(error, NonFiniteLoss) and report is not None:
                return RunResult(run_dir, report, header["results"], time.perf_counter() - start)
            raise
        except Exception as error:
            if resume is None and not context.built:
                _discard(context)
            else:
                _finish_partial(context, header, f"stopped by {type(error).__name__} at step {context.last_step}")
            raise
        except BaseException as error:
            _finish_partial(context, header, f"stopped by {type(error).__name__} at step {context.last_step}")
            raise
    seconds = time.perf_counter() - start
    if context.monitor is None:
        raise RuntimeError(f"recipe {recipe.name!r} never started its Monitor")
    header["results"] = {**results, "wall_seconds": round(seconds, 1)}
    header["status"] = "finished"
    _write_header(context, header)
    context.monitor.log_hparams(_flat_hparams(case, threads), _numeric(header["results"]))
    report = context.monitor.finish()
    return RunResult(run_dir=run_dir, report=report, results=header["results"], seconds=seconds)


def _finish_partial(context: RunContext, header: dict[str, Any], reason: str) -> Report | None:
    """Save what was measured so far and a report that says it is partial and where it stopped."""
    header["status"] = reason
    if context.first_bad_step is not None:
        header["first_nonfinite_step"] = context.first_bad_step
    _write_header(context, header)
    return None if context.monitor is None else context.monitor.finish(partial=reason)


def _discard(context: RunContext) -> None:
    """Remove the run folder of a run whose recipe failed before training began (its case's folder too, when
    that is left empty), so that bad input leaves nothing half-written."""
    if context.monitor is not None:
        context.monitor.close()
    if not context.writes:
        return
    shutil.rmtree(context.run_dir)
    parent = context.run_dir.parent
    if not any(parent.iterdir()):
        parent.rmdir()


def _write_header(context: RunContext, header: dict[str, Any]) -> None:
    """run.json, written by the process that writes the run folder (rank 0 under torchrun)."""
    if context.writes:
        atomic_write_json(context.run_dir / "run.json", header)


class _signals_to:
    """Route SIGTERM and SIGINT to the run context while a case runs; restore the old handlers after."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        for number in (signal.SIGTERM, signal.SIGINT):
            try:
                self.previous[number] = signal.signal(number, self._handle)
            except ValueError:  # not the main thread: leave signals to the caller
                continue

    def _handle(self, number: int, frame: Any) -> None:
        self.context.signal_arrived(signal.Signals(number).name)

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def _read_header(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot resume: unreadable run.json ({error})") from error


def _resolved(case: Case, threads: int) -> dict[str, Any]:
    """The case as it runs: every default filled in, the thread count fixed (a resumed run keeps it)."""
    data = case.file.model_dump(exclude={"profiles"})
    data["run"]["threads"] = threads
    for name in ("data", "model", "training", "sampling"):
        data[name] = getattr(case, name).model_dump()
    data["profile"] = case.profile
    return data


def _flat_hparams(case: Case, threads: int) -> dict[str, Any]:
    flat: dict[str, Any] = {"case": case.name, "profile": case.profile, "seed": case.file.seed, "threads": threads}
    for name in ("data", "model", "training", "sampling"):
        for key, value in getattr(case, name).model_dump().items():
            flat[f"{name}.{key}"] = value
    return flat


def _numeric(results: dict[str, Any]) -> dict[str, float]:
    return {f"result/{k}": float(v) for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

"""Runs a validated case: a fresh run folder, the recipe's training loop with a Monitor, the report."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from gendiag import __version__
from gendiag.config import Case
from gendiag.io import atomic_write_json, atomic_write_text
from gendiag.monitor import Monitor
from gendiag.recipes import get_recipe
from gendiag.report import Report
from gendiag.rundir import create_run_dir

ProgressFn = Callable[[int, dict[str, float]], None]


@dataclass
class RunContext:
    """What a recipe gets from the runner: where to write, the seed, a progress callback, the Monitor."""

    run_dir: Path
    seed: int
    case: Case
    progress: ProgressFn = lambda step, info: None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    monitor: Monitor | None = None

    def start_monitor(self, task: str, **facts: Any) -> Monitor:
        """The Monitor for this run, with the case's probe settings."""
        probes = self.case.file.probes
        self.monitor = Monitor(self.run_dir, task=task, probes=probes.set, every=probes.every,
                               strict=probes.strict, **facts)
        return self.monitor

    def generator(self, offset: int = 0) -> torch.Generator:
        """A seeded generator for one purpose (offset keeps data, init and sampling streams apart)."""
        return torch.Generator().manual_seed(self.seed * 1000 + offset)


@dataclass
class RunResult:
    run_dir: Path
    report: Report
    results: dict[str, Any]
    seconds: float


def run_case(case: Case, out_root: str | Path | None = None, progress: ProgressFn | None = None) -> RunResult:
    """Train the case end to end and write every artefact into a new run folder."""
    recipe = get_recipe(case.file.recipe, case.path)
    run_dir = create_run_dir(out_root if out_root is not None else case.file.output.root, case.name)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(_resolved(case), sort_keys=False))
    header = {
        "case": case.name, "description": case.file.description, "profile": case.profile, "seed": case.file.seed,
        "started": datetime.now().isoformat(timespec="seconds"), "gendiag": __version__,
        "torch": torch.__version__, "python": platform.python_version(), "results": {},
    }
    atomic_write_json(run_dir / "run.json", header)
    torch.manual_seed(case.file.seed)
    context = RunContext(run_dir=run_dir, seed=case.file.seed, case=case,
                         progress=progress or (lambda step, info: None))
    start = time.perf_counter()
    try:
        results = recipe.run(case, context)
    except BaseException as error:
        if context.monitor is not None:
            header["status"] = f"stopped by {type(error).__name__}"
            atomic_write_json(run_dir / "run.json", header)
            context.monitor.finish(partial=f"stopped by {type(error).__name__} at step {context.monitor.ctx.step}")
        raise
    seconds = time.perf_counter() - start
    header["results"] = {**results, "wall_seconds": round(seconds, 1)}
    header["status"] = "finished"
    atomic_write_json(run_dir / "run.json", header)
    if context.monitor is None:
        raise RuntimeError(f"recipe {recipe.name!r} never started its Monitor")
    context.monitor.log_hparams(_flat_hparams(case), _numeric(header["results"]))
    report = context.monitor.finish()
    return RunResult(run_dir=run_dir, report=report, results=header["results"], seconds=seconds)


def _resolved(case: Case) -> dict[str, Any]:
    data = case.file.model_dump(exclude={"profiles"})
    for name in ("data", "model", "training", "sampling"):
        data[name] = getattr(case, name).model_dump()
    data["profile"] = case.profile
    return data


def _flat_hparams(case: Case) -> dict[str, Any]:
    flat: dict[str, Any] = {"case": case.name, "profile": case.profile, "seed": case.file.seed}
    for name in ("data", "model", "training", "sampling"):
        for key, value in getattr(case, name).model_dump().items():
            flat[f"{name}.{key}"] = value
    return flat


def _numeric(results: dict[str, Any]) -> dict[str, float]:
    return {f"result/{k}": float(v) for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

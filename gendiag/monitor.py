"""`Monitor`: attaches to a user's own training loop, feeds the probes, writes findings and reports."""

from __future__ import annotations

import contextlib
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from gendiag.context import ProbeContext, WatchedModel
from gendiag.findings import Finding, sort_findings
from gendiag.io import atomic_write_json, atomic_write_text
from gendiag.probes import select_probes
from gendiag.probes.base import TASKS, ForwardCall, Probe, ProbeSection, StepRecord
from gendiag.report import Report, render_run
from gendiag.sinks.scalars import ScalarTable
from gendiag.sinks.tensorboard import TensorBoardSink


class Monitor:
    """Watches one training run.

    Args:
        run_dir: folder for everything the run writes (TensorBoard `tb/`, figures, findings, reports).
        task: "flow", "diffusion", "gan", "vae" or "generic"; picks the default probes.
        probes: "default", "all", or a list of probe names.
        every: step interval of the probes' per-step work (1 = every step).
        strict: a probe that raises stops training (for tests) instead of being switched off.
        record_rows: rows of each recorded forward call kept (inputs seen in training and in sampling).
        **facts: what the user knows about the problem, for the probes: `schedule=alphas_cumprod`,
            `image_shape=(C, H, W)`, `modes=centers`, `mode_std=s`, `classifier=fn`, `reference=data`,
            `source=callable(n) -> noise batch`, `sampler=callable(velocity_fn, x0, steps) -> x1`.
    """

    def __init__(
        self,
        run_dir: str | Path,
        task: str = "generic",
        *,
        probes: str | list[str] = "default",
        every: int = 1,
        strict: bool = False,
        record_rows: int = 64,
        **facts: Any,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"Monitor: task {task!r} is not one of {TASKS}")
        if record_rows < 1:
            raise ValueError(f"Monitor: record_rows must be >= 1, got {record_rows}")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.strict = strict
        self.record_rows = record_rows
        self.ctx = ProbeContext(
            run_dir=self.run_dir, task=task, facts=facts,
            tb=TensorBoardSink(self.run_dir / "tb"), table=ScalarTable(),
        )
        self.probes: list[Probe] = select_probes(probes, task=task, every=every)
        self._failures: list[Finding] = []
        self._mode = "train"
        self._forward_calls: dict[str, int] = defaultdict(int)
        self._record_every = every
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._optimizers: list[torch.optim.Optimizer] = []
        self._phase_seconds: dict[str, float] = defaultdict(float)
        self._last_step: int | None = None
        self._finished: Report | None = None
        self._user_sections: list[ProbeSection] = []
        self._conclusions: list[Callable[[list[Finding]], ProbeSection | None]] = []
        self._wants_forward = any(p.wants_forward for p in self.probes)
        self._listeners: dict[str, list[Probe]] = {}
        self._dispatch("setup")

    # -- the user's calls -------------------------------------------------------------------------

    def watch(self, model: torch.nn.Module, name: str = "model", x_arg: int | str = 0,
              t_arg: int | str | None = 1, optimizer: torch.optim.Optimizer | None = None) -> torch.nn.Module:
        """Record what `model` is fed, in training and in sampling (a few rows per call, detached), and its
        gradients. With `optimizer` (the one that trains `model`), see `watch_optimizer`."""
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Monitor.watch: model must be a torch.nn.Module, got {type(model).__name__}")
        if name in self.ctx.models:
            raise ValueError(f"Monitor.watch: a model named {name!r} is already watched")
        self.ctx.models[name] = WatchedModel(model, x_arg, t_arg)
        if self._wants_forward:
            self._hooks.append(model.register_forward_hook(self._forward_hook(name), with_kwargs=True))
        self._dispatch("on_watch", name, model)
        if optimizer is not None:
            self.watch_optimizer(optimizer)
        return model

    def watch_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Read the watched networks' gradients where they exist: just before each `optimizer.step()` (after
        GradScaler's unscaling), whatever the loop's order of zero_grad, step and `Monitor.step`, once per optimizer
        step under gradient accumulation. Call it once per optimizer (a GAN: one for G, one for D), before or after
        `watch`; watching the same optimizer again does nothing. Its hooks only read and are removed by `finish`."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Monitor.watch_optimizer: optimizer must be a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        if any(watched is optimizer for watched in self._optimizers):
            return optimizer
        self._optimizers.append(optimizer)
        self._hooks.append(optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: self._dispatch("before_optimizer_step", opt)))
        self._hooks.append(optimizer.register_step_post_hook(
            lambda opt, args, kwargs: self._dispatch("after_optimizer_step", opt)))
        self._dispatch("on_optimizer", optimizer)
        return optimizer

    def observe_data(self, batch: torch.Tensor, role: str = "data") -> None:
        """A batch of training data (role "data") or of the noise/prior the model starts from ("source")."""
        if role not in ("data", "source"):
            raise ValueError(f"Monitor.observe_data: role must be 'data' or 'source', got {role!r}")
        batch = _check_batch(batch, f"observe_data(role={role!r})")
        self._dispatch("on_data", batch, role)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time spent in a named part of the step ("data", "step", ...)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._phase_seconds[name] += time.perf_counter() - start

    def step(self, step: int, loss: float | torch.Tensor | None = None, t: torch.Tensor | None = None,
             per_sample_loss: torch.Tensor | None = None, **scalars: Any) -> None:
        """Once per training step, after the optimizer step. Extra scalars are logged as given; tensors
        (for example a GAN's `d_real`, `d_fake`) and strings (`d_output="prob"`) are handed to the probes."""
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"Monitor.step: steps must increase, got {step} after {self._last_step}")
        record = StepRecord(step=int(step), loss=_scalar(loss), t=_detach(t),
                            per_sample_loss=_detach(per_sample_loss))
        for key, value in scalars.items():
            if isinstance(value, torch.Tensor) and value.numel() > 1:
                record.tensors[key] = value.detach()
            elif isinstance(value, str):
                record.labels[key] = value
            elif isinstance(value, bool) or value is None:
                continue
            else:
                record.scalars[key] = float(value)
        self._last_step = record.step
        self.ctx.step = record.step
        if record.loss is not None:
            self.ctx.log_scalar("loss/train", record.loss, record.step)
        for key, value in record.scalars.items():
            self.ctx.log_scalar(key if "/" in key else f"train/{key}", value, record.step)
        if self._phase_seconds:
            for phase_name, seconds in self._phase_seconds.items():
                self.ctx.table.add(record.step, f"time/{phase_name}", seconds)
            self._phase_seconds.clear()
        self._dispatch("on_step", record)

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        """Forward calls of watched networks inside this block are recorded as sampling."""
        before = self._mode
        self._mode = "sampling"
        try:
            yield
        finally:
            self._mode = before

    def observe_samples(self, samples: torch.Tensor, step: int | None = None) -> None:
        """Generated samples, for the quality and collapse probes."""
        samples = _check_batch(samples, "observe_samples")
        self._dispatch("on_samples", samples, self.ctx.step if step is None else int(step))

    def observe_latents(self, mu: torch.Tensor, logvar: torch.Tensor, step: int | None = None) -> None:
        """A VAE's posterior parameters on one batch, for the latent-health probes."""
        mu = _check_batch(mu, "observe_latents(mu)")
        logvar = _check_batch(logvar, "observe_latents(logvar)")
        if mu.shape != logvar.shape:
            raise ValueError(f"Monitor.observe_latents: mu and logvar must have one shape, got {tuple(mu.shape)} "
                             f"and {tuple(logvar.shape)}")
        self._dispatch("on_latents", mu, logvar, self.ctx.step if step is None else int(step))

    def add_section(self, title: str, text: str = "", figures: tuple[str, ...] | list[str] = (),
                    table: Any = None) -> None:
        """Add a section of your own to the report (figures saved with `save_figure`), shown before the probes'."""
        self._user_sections.append(ProbeSection(title=title, text=text, figures=list(figures), table=table))

    def add_conclusion(self, write: Callable[[list[Finding]], ProbeSection | None]) -> None:
        """`write(findings)` runs in `finish` once the findings exist and returns a section shown first in the
        report: an explanation that can quote the findings' own evidence."""
        self._conclusions.append(write)

    def save_figure(self, figure: Any, name: str, step: int | None = None) -> str:
        """Save a matplotlib figure into the run folder and TensorBoard; returns its path for `add_section`."""
        return self.ctx.save_figure(figure, name, step)

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's settings and headline figures, for TensorBoard's HParams dashboard (compare runs there)."""
        self.ctx.tb.hparams(hparams, metrics)

    def finish(self, *, partial: str | None = None) -> Report:
        """Final probe work, then findings.json, metrics.csv, report.md and report.html. Idempotent.

        `partial` marks an interrupted run (for example "stopped by SIGTERM at step 120")."""
        if self._finished is not None:
            return self._finished
        for handle in self._hooks:
            handle.remove()
        sections: list[ProbeSection] = list(self._user_sections)
        for probe in list(self.probes):
            section = self._call(probe, "finish")
            if section is not None:
                sections.append(section)
        findings: list[Finding] = []
        for probe in list(self.probes):
            for finding in self._call(probe, "findings") or []:
                finding.probe = finding.probe or probe.name
                findings.append(finding)
        findings = sort_findings(findings + self._failures)
        conclusions = [section for write in self._conclusions if (section := write(findings)) is not None]
        sections = conclusions + sections
        self.ctx.tb.text("findings", _findings_text(findings))
        if self.ctx.layout:
            self.ctx.tb.layout(self.ctx.layout)
        self.ctx.tb.close()
        self.ctx.table.save(self.run_dir / "metrics.csv")
        atomic_write_json(self.run_dir / "probe_data.json",
                          {p.name: p.state() for p in self.probes})
        self._finished = render_run(self.run_dir, findings, sections, partial=partial)
        return self._finished

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        partial = None if exc_type is None else f"stopped by {exc_type.__name__} at step {self._last_step}"
        self.finish(partial=partial)

    # -- internals --------------------------------------------------------------------------------

    def _forward_hook(self, name: str) -> Any:
        watched = self.ctx.models[name]

        def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            if self.ctx.recording_suspended:
                return
            self._forward_calls[name] += 1
            if self._mode == "train" and (self._forward_calls[name] - 1) % self._record_every:
                return
            rows = self.record_rows
            call = ForwardCall(
                model=name, mode=self._mode, step=self.ctx.step,
                x=_rows(_argument(args, kwargs, watched.x_arg), rows),
                t=_rows(_argument(args, kwargs, watched.t_arg), rows),
                output=_rows(output if isinstance(output, torch.Tensor) else None, rows),
            )
            self._dispatch("on_forward", call)

        return hook

    def _dispatch(self, method: str, *args: Any) -> None:
        listeners = self._listeners.get(method)
        if listeners is None:  # the probes whose class overrides the callback: most leave most of them empty
            listeners = [probe for probe in self.probes if getattr(type(probe), method) is not getattr(Probe, method)]
            self._listeners[method] = listeners
        for probe in listeners:
            self._call(probe, method, *args)

    def _call(self, probe: Probe, method: str, *args: Any) -> Any:
        try:
            return getattr(probe, method)(self.ctx, *args)
        except Exception as error:  # a probe must never stop the user's training
            if self.strict:
                raise
            self._disable(probe, method, error)
            return None

    def _disable(self, probe: Probe, method: str, error: Exception) -> None:
        self.probes.remove(probe)
        self._listeners.clear()
        log = self.run_dir / "probe_errors" / f"{probe.name}.txt"
        atomic_write_text(log, "".join(traceback.format_exception(error)))
        self._failures.append(Finding(
            code="probe-failed", severity="info",
            title=f"Probe {probe.name} failed and was switched off",
            message=f"{probe.name}.{method} raised {type(error).__name__}: {error}. Training went on; "
                    "this probe's results are missing from the report.",
            evidence={"probe": probe.name, "method": method, "step": self.ctx.step,
                      "traceback": str(log.relative_to(self.run_dir))},
            suggestion="Check the inputs this probe needs (see the traceback file); report a bug if they are right.",
            probe=probe.name,
        ))


def _argument(args: tuple, kwargs: dict, where: int | str | None) -> Any:
    if where is None:
        return None
    if isinstance(where, str):
        return kwargs.get(where)
    return args[where] if where < len(args) else None


def _rows(value: Any, rows: int) -> torch.Tensor | None:
    if not isinstance(value, torch.Tensor):
        return None
    value = value.detach()
    if value.dim() > 0:
        value = value[:rows]
    return value.float().cpu()


def _scalar(value: float | torch.Tensor | None) -> float | None:
    if value is None:
        return None
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _detach(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else torch.as_tensor(value).detach()


def _check_batch(batch: Any, where: str) -> torch.Tensor:
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"Monitor.{where}: expected a torch.Tensor, got {type(batch).__name__}")
    if batch.dim() < 2:
        raise ValueError(f"Monitor.{where}: expected a batch of shape (B, ...) with B samples, got shape "
                         f"{tuple(batch.shape)}")
    if batch.shape[0] == 0:
        raise ValueError(f"Monitor.{where}: the batch is empty (shape {tuple(batch.shape)})")
    batch = batch.detach()
    if batch.is_floating_point() and not bool(torch.isfinite(batch).all()):
        bad = int((~torch.isfinite(batch)).sum())
        raise ValueError(f"Monitor.{where}: the batch holds {bad} NaN or infinite values")
    return batch


def _findings_text(findings: list[Finding]) -> str:
    if not findings:
        return "No findings."
    return "\n\n".join(f"**{f.severity.upper()}** `{f.code}` — {f.title}: {f.message}" for f in findings)

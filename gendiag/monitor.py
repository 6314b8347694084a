"""`Monitor`: attaches to a user's own training loop, feeds the probes, writes findings and reports.

Over 400 lines because it is the whole surface a user calls (watch, step, observe_*, sampling, finish) with the
argument checks each public call owes its caller; the work behind those calls lives elsewhere: live checks in
`gendiag.live`, row picking in `gendiag.rows`, facts in `gendiag.facts`, sinks in `gendiag.sinks`, the report in
`gendiag.report`. The next split, when it grows again: the forward-hook recording into its own module."""

from __future__ import annotations

import contextlib
import functools
import numbers
import shutil
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from gendiag.context import Call, Inputs, ProbeContext, WatchedModel, batch_times
from gendiag.distributed import (checks_together, combine, combined_view, enlist_monitor, from_rank_0, quiet,
                                 remove_scratch, scratch_dir, unwrapped)
from gendiag.facts import check_facts
from gendiag.figures.evidence import check_figure_policy
from gendiag.findings import Finding, link_consequences, sort_findings
from gendiag.io import atomic_write_json, atomic_write_text
from gendiag.live import (CHECK_EVERY, CHECK_SECONDS, JOURNAL, Announce, LiveChecks, check_schedule, check_stop_on,
                          stops)
from gendiag.pending import FLUSH_EVERY, PendingSteps
from gendiag.probes import select_probes
from gendiag.probes.base import HEAD_ROWS, TASKS, ForwardCall, Probe, StepRecord
from gendiag.quantities.observed import finite_rows, screen_call
from gendiag.report import ProbeSection, Report, render_run
from gendiag.rows import RowPicker, aligned_rows
from gendiag.sinks import Sink
from gendiag.sinks.scalars import ScalarTable
from gendiag.sinks.tensorboard import TensorBoardSink


WATCH_HINT = " (mon.watch: t_arg=None for a network without time, or inputs=lambda args, kwargs: (x, t))"


def _normal_tensors(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` run with inference mode off where its caller has it on (a sampler under `torch.inference_mode()`):
    the tensors the probes make and keep are then normal ones, which a later update outside inference mode may
    change in place (an inference tensor refuses: "Inplace update to inference tensor outside InferenceMode")."""

    @functools.wraps(method)
    def outside_inference_mode(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_inference_mode_enabled():
            return method(*args, **kwargs)
        with torch.inference_mode(False):
            return method(*args, **kwargs)

    return outside_inference_mode


class Monitor:
    """Watches one training run.

    Args:
        run_dir: folder for everything the run writes (TensorBoard `tb/`, figures, findings, reports).
        task: "flow", "diffusion", "gan", "vae", "autoregressive" or "generic"; picks the default probes.
        probes: "default", "all", or a list of probe names.
        every: step interval of the probes' per-step work (1 = every step).
        strict: a probe that raises stops training (for tests) instead of being switched off.
        record_rows: rows of each recorded forward call kept (inputs seen in training and in sampling), chosen at
            random from the Monitor's own generator, so batches whose rows come in order are sampled fairly.
        overwrite: a folder that already holds a run (its report, findings, metrics or TensorBoard events) is
            refused unless this is true; then the old run's artefacts are deleted first.
        resume: continue the run already in `run_dir` (as `gendiag run --resume` does): its artefacts stay,
            TensorBoard adds an event file beside the old ones, and `finish` writes the reports anew.
        sinks: more destinations for every scalar, figure and text the run logs (subclasses of
            `gendiag.sinks.Sink`), besides the two defaults: TensorBoard (`tb/`) and the scalar table (`metrics.csv`).
        check_every: live checks: every probe's rules are asked after a step once at least this many steps and
            `check_seconds` of wall time have passed since the last check (the first check after `check_every` steps
            alone); the first time a warning or critical finding holds it is announced once (a console line, a
            TensorBoard text entry, a line of `findings_live.jsonl`), and again when it stops holding. None: no live
            checks (findings at the end only).
        check_seconds: the least wall time between two live checks, which keeps them nearly free on fast loops;
            a check also waits until the checks so far take at most 2% of the wall time.
        stop_on: None, "warning" or "critical": `should_stop` becomes true once a live check finds a finding of
            that severity or worse (the loop decides what to do; `gendiag run --stop-on` ends the run there).
        total_steps: the number of steps the loop plans to run, for the report's "first seen at step N of M" (and
            a run that stops early); default: the last step reached.
        announce: where the announcement lines go (`announce(line)`); default: stderr, through `tqdm.write` when
            the loop uses tqdm, so that a progress bar stays whole.
        flush_every: steps between two flushes. Between flushes `step`, `observe_data` and the forward hooks leave
            everything they gather on the tensors' device (nothing that makes the host wait for a GPU); at a flush
            (every `flush_every` steps, the first step, a due live check, and `finish`) it reaches the host in one
            copy, the probes read it, the scalars go to TensorBoard, and a non-finite loss or data batch is found,
            named by the step it appeared in. Flushes come at the first step and at the multiples of `flush_every`
            (the first step past each, for a loop that skips step numbers). 1: every step (the host waits each
            step).
        figures: "findings" (default) or "all". Under "findings" the report draws the run's overview (the loss
            curve, the samples against the data, a GAN's balance and modes, a VAE's latent units) and, of every other
            figure, only those that show a finding that holds at the end or that a finding names
            (`gendiag.figures.evidence`): most of `finish`'s time is drawing. "all" draws every
            figure the probes make, healthy or not (`gendiag run` does, for a case's report); a few probes make
            one only for their own finding.
        **facts: what the user knows about the problem, for the probes: `schedule=alphas_cumprod`,
            `image_shape=(C, H, W)`, `modes=centers`, `mode_std=s`, `classifier=fn`, `n_classes=k`,
            `reference=data`, `likelihood="bernoulli"`, `entropy=nats_per_position` (autoregressive),
            `guidance=scale` and `null_cond=label` (classifier-free guidance), `source=callable(n) -> batch` (or a
            batch) for the distribution sampling starts from when it is not N(0, I),
            `sampler=callable(velocity_fn, x0, steps) -> x1`.
            `gendiag.facts.FACTS` lists them with their rules; an unknown or malformed fact is a ValueError here,
            before training starts.

    Under `torch.distributed` (a process group initialised before the Monitor is made, as under torchrun) make a
    Monitor on every rank alike: only rank 0 writes `run_dir` (the others a scratch folder of their own), `finish`
    is a collective that combines the ranks' statistics before rank 0 decides (`gendiag.distributed`). Live checks
    then come at flushes, when rank 0's schedule says one is due: each combines the ranks' statistics, rank 0's rules
    decide, and `should_stop` is rank 0's on every rank.
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
        overwrite: bool = False,
        resume: bool = False,
        sinks: Sequence[Sink] = (),
        check_every: int | None = CHECK_EVERY,
        check_seconds: float = CHECK_SECONDS,
        stop_on: str | None = None,
        total_steps: int | None = None,
        announce: Announce | None = None,
        flush_every: int = FLUSH_EVERY,
        figures: str = "findings",
        **facts: Any,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"Monitor: task {task!r} is not one of {TASKS}")
        if record_rows < 1:
            raise ValueError(f"Monitor: record_rows must be >= 1, got {record_rows}")
        check_facts(facts, keywords=("task", "probes", "every", "strict", "record_rows", "overwrite", "resume",
                                     "sinks", "check_every", "check_seconds", "stop_on", "total_steps", "announce",
                                     "flush_every", "figures"))
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise ValueError(f"Monitor: flush_every must be an integer >= 1, got {flush_every!r}")
        self.stop_on = check_stop_on(stop_on)
        check_figure_policy(figures)
        check_schedule(check_every, check_seconds)
        if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, int)
                                        or total_steps < 1):
            raise ValueError(f"Monitor: total_steps must be an integer >= 1 (or None), got {total_steps!r}")
        if announce is not None and not callable(announce):
            raise TypeError(f"Monitor: announce must be callable(line), got {type(announce).__name__}")
        if stop_on is not None and check_every is None:
            raise ValueError(f"Monitor: stop_on={stop_on!r} needs live checks; give check_every a number of steps")
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise TypeError(f"Monitor: each of sinks must subclass gendiag.sinks.Sink, got {type(sink).__name__}")
        if overwrite and resume:
            raise ValueError("Monitor: overwrite=True and resume=True contradict each other; pass one")
        self.ranks = enlist_monitor()
        self.run_dir = Path(run_dir) if self.ranks is None or self.ranks.writes else scratch_dir(self.ranks)
        self._shared_run_dir = Path(run_dir)
        if self.ranks is not None and not self.ranks.writes:
            announce = quiet
        if not resume:
            _claim_run_dir(self.run_dir, overwrite)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.strict = strict
        self.record_rows = record_rows
        tb, table = TensorBoardSink(self.run_dir / "tb"), ScalarTable()
        self.ctx = ProbeContext(run_dir=self.run_dir, task=task, facts=facts, tb=tb, table=table,
                                sinks=[tb, table, *sinks], figures=figures)
        self.probes: list[Probe] = select_probes(probes, task=task, every=every)
        if self.ranks is not None:
            from gendiag.probes.distributed import DistributedProbe  # a probe module: loaded with the probes

            self.probes.append(DistributedProbe(self.ranks.world, self.ranks.backend))
        self._failures: list[Finding] = []
        self._mode = "train"
        self._sampling_session = 0
        self._forward_calls: dict[str, int] = defaultdict(int)
        self._record_every = every
        self._row_picker = RowPicker(seed=0)
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._optimizers: list[torch.optim.Optimizer] = []
        self._phase_seconds: dict[str, float] = defaultdict(float)
        self._last_step: int | None = None
        self._epoch: tuple[int, int, int] | None = None  # (epoch, its offset, its last batch index)
        self._finished: Report | None = None
        self._user_sections: list[ProbeSection] = []
        self._conclusions: list[Callable[[list[Finding]], ProbeSection | None]] = []
        self._listeners: dict[str, list[Probe]] = {}
        self._live = None if check_every is None else LiveChecks(self.run_dir, self.ctx.sinks, announce, check_every,
                                                                 check_seconds)
        self._stopped_on: tuple[Finding, int] | None = None
        self._together: bool | None = None  # live checks under torch.distributed combine the ranks (fixed once)
        self.total_steps = total_steps
        self.flush_every = flush_every
        self._pending = PendingSteps()
        self._flushes = 0
        self._flushed_block = 0  # flushes happen at the first step whose step // flush_every passes this
        self._dispatch("setup")
        self._wants_forward = any(p.wants_forward for p in self.probes)  # after setup: a probe may decide by task

    # -- the user's calls -------------------------------------------------------------------------

    def watch(self, model: torch.nn.Module, name: str = "model", x_arg: int | str = 0,
              t_arg: int | str | None = 1, *, inputs: Inputs | None = None, call: Call | None = None,
              optimizer: torch.optim.Optimizer | None = None, scaler: torch.amp.GradScaler | None = None,
              cond_arg: int | str | None = None, ema_of: str | torch.nn.Module | None = None) -> torch.nn.Module:
        """Record what `model` is fed, in training and in sampling (a few rows per call, detached).

        By default x is the call's argument `x_arg` and t its argument `t_arg` (a position or a keyword; t_arg=None
        for a network without time). For any other convention give `inputs(args, kwargs) -> (x, t)`, for example
        `inputs=lambda args, kwargs: (args[0][:, :-1], args[0][:, -1])` for `net(torch.cat([x, t[:, None]], 1))`
        or `lambda args, kwargs: (args[1], args[0])` for `net(t, x)`. t may be None, a number, a 0-d tensor or a
        (B,) or (B, 1) tensor; it is recorded as (B,). Probes that run the network themselves (velocity, sampler)
        call it as `model(x, t)` through x_arg/t_arg, or through `call(module, x, t) -> output` where given (t a
        (B,) tensor), for example `call=lambda net, x, t: net(torch.cat([x, t[:, None]], 1))`; with `inputs`
        and no `call` those probes say so in the report instead of running. A DistributedDataParallel model is
        watched through the network it wraps.

        A conditional network: `cond_arg` is where its condition sits (`net(x, t, y)`: cond_arg=2; `net(x, t,
        class_labels=y)`: cond_arg="class_labels"), or `inputs` returns (x, t, cond). Class labels (B,), one-hot rows
        (B, K) or one label for the batch are counted per class; a call without it (None) or an all-zero one-hot row
        counts as the null condition of classifier-free guidance.

        With `optimizer` (the one that trains `model`) its gradients are read just before each optimizer step, right
        under any loop order; see `watch_optimizer`. With `scaler` (the loop's `torch.amp.GradScaler`) the steps it
        skips on an overflow are counted (see `watch_optimizer`).

        A compiled model (`torch.compile(model)`) can be watched as it is: the recording hook sits on the compiled
        wrapper, outside the compiled graph (no graph break, no recompilation), and sees every call; the gradients
        are read on the module it wraps (`_orig_mod`, under its own parameter names), which the probes that run the
        network call too, so their evaluation calls (no_grad, eval mode) do not recompile the loop's graph.

        With `ema_of` (the name of a watched network, or that network) `model` is its exponential moving average:
        its calls inside `with mon.sampling():` are compared with the training calls of the network it follows
        (recorded under that network's name), its calls outside sampling are not training and are not recorded,
        its weights are not read as a trained network's, and the `ema` probe compares how far it moved over the run
        with how far the network moved (`ema-lagging`)."""
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Monitor.watch: model must be a torch.nn.Module, got {type(model).__name__}")
        if name in self.ctx.models:
            raise ValueError(f"Monitor.watch: a model named {name!r} is already watched")
        for what, function in (("inputs", inputs), ("call", call)):
            if function is not None and not callable(function):
                raise TypeError(f"Monitor.watch({name!r}): {what} must be callable, got {type(function).__name__}")
        self._note_scaler(scaler, f"Monitor.watch({name!r})")
        hooked = unwrapped(model)  # DistributedDataParallel's network (its calls reach it), or a compiled wrapper
        module = _compiled_module(hooked)  # the network itself, which probes may run alone
        follows = None if ema_of is None else self._followed(name, module, ema_of)
        self.ctx.models[name] = WatchedModel(module, x_arg, t_arg, inputs=inputs, call=call, cond_arg=cond_arg,
                                             ema_of=follows)
        if self._wants_forward:
            self._hooks.append(hooked.register_forward_hook(self._forward_hook(name, hooked), with_kwargs=True))
        self._dispatch("on_watch", name, module)
        if optimizer is not None:
            self.watch_optimizer(optimizer, scaler)
        return model

    def _followed(self, name: str, model: torch.nn.Module, ema_of: str | torch.nn.Module) -> str:
        """The watched name of the network an EMA copy follows; a ValueError when it is not watched or its
        parameters do not match the copy's one for one."""
        if isinstance(ema_of, torch.nn.Module):
            found = [watched for watched, held in self.ctx.models.items() if held.module is ema_of]
            if not found:
                raise ValueError(f"Monitor.watch({name!r}): ema_of is a network that is not watched; watch the model "
                                 "it averages first, then the EMA copy with ema_of=that name")
            ema_of = found[0]
        if ema_of not in self.ctx.models:
            raise ValueError(f"Monitor.watch({name!r}): ema_of={ema_of!r} names no watched network (watched: "
                             f"{sorted(self.ctx.models)}); watch the model it averages first")
        if self.ctx.models[ema_of].ema_of is not None:
            raise ValueError(f"Monitor.watch({name!r}): ema_of={ema_of!r} is itself an EMA copy; name the trained "
                             "network")
        ours = [tuple(p.shape) for p in model.parameters()]
        theirs = [tuple(p.shape) for p in self.ctx.models[ema_of].module.parameters()]
        if ours != theirs:
            raise ValueError(f"Monitor.watch({name!r}): an EMA copy must have the parameters of the network it "
                             f"follows, one for one; {name!r} has {len(ours)} tensors, {ema_of!r} {len(theirs)}, "
                             "or their shapes differ")
        return ema_of

    def watch_optimizer(self, optimizer: torch.optim.Optimizer,
                        scaler: torch.amp.GradScaler | None = None) -> torch.optim.Optimizer:
        """Read the watched networks' gradients where they exist: just before each `optimizer.step()` (after
        GradScaler's unscaling), whatever the loop's order of zero_grad, step and `Monitor.step`, once per optimizer
        step under gradient accumulation. Call it once per optimizer (a GAN: one for G, one for D), before or after
        `watch`; watching the same optimizer again does nothing. Its hooks only read and are removed by `finish`.

        Mixed precision: under `torch.amp.GradScaler` the gradients read here are the unscaled ones (`scaler.step`
        unscales before it steps). Give `scaler=` too and the steps the scaler skips on an overflow (its scale
        lowered, the optimizer step not taken) are counted in the report, and their unchanged weights are not
        taken for stalled parameters; the scale is read on its device, at the flush."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Monitor.watch_optimizer: optimizer must be a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        self._note_scaler(scaler, "Monitor.watch_optimizer")
        if any(watched is optimizer for watched in self._optimizers):
            return optimizer
        self._optimizers.append(optimizer)
        self._hooks.append(optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: self._step_hook("before_optimizer_step", opt)))
        self._hooks.append(optimizer.register_step_post_hook(
            lambda opt, args, kwargs: self._step_hook("after_optimizer_step", opt)))
        self._dispatch("on_optimizer", optimizer)
        return optimizer

    def _note_scaler(self, scaler: Any, where: str) -> None:
        """Keep the loop's GradScaler (one per run) for the gradients probe."""
        if scaler is None:
            return
        if not isinstance(scaler, torch.amp.GradScaler):
            raise TypeError(f"{where}: scaler must be a torch.amp.GradScaler, got {type(scaler).__name__}")
        if self.ctx.scaler is not None and self.ctx.scaler is not scaler:
            raise ValueError(f"{where}: a different GradScaler was given before; a run has one scaler")
        self.ctx.scaler = scaler

    @_normal_tensors
    def observe_data(self, batch: torch.Tensor, role: str = "data", *, cond: Any = None) -> None:
        """A batch of training data (role "data") or of the noise/prior the model starts from ("source").
        `cond`: each data row's condition (class labels (B,), one-hot (B, K)), for the check that samples follow
        theirs (`observe_samples(x, cond=y)`).

        Like every observe_* call it never raises on a tensor's values or shape. A batch no probe can use (0-d, no
        rows, complex, rows of another shape than the first batch's) is skipped and counted (`batch-skipped`); a
        (B,) tensor is B values of one feature. Rows holding NaN or infinite values are counted (`data-nonfinite`):
        before the first step at once, and left out; after it, on the batch's device, read at the next flush (see
        `flush_every`), so that observing a batch never makes the step wait (the probes then see those rows too).
        What is not a tensor is a TypeError."""
        if role not in ("data", "source"):
            raise ValueError(f"Monitor.observe_data: role must be 'data' or 'source', got {role!r}")
        if cond is not None and role != "data":
            raise ValueError(f"Monitor.observe_data: cond= belongs to data rows (role='data'), got role={role!r}")
        batch = _check_batch(batch, f"observe_data(role={role!r})")
        rows = batch.shape[0] if batch.dim() > 0 else 0
        if self._last_step is None:
            batch = self.ctx.observed.screen(batch, role, self.ctx.step)
        else:
            batch = self.ctx.observed.usable(batch, role, self.ctx.step)
            if batch is not None:
                self._pending.add_rows(batch, role, self.ctx.step)
        if batch is None:
            return
        self._dispatch("on_data", batch, role)
        if cond is not None and batch.shape[0] == rows:  # rows left out before the first step: cond no longer aligns
            self._dispatch("on_conditions", batch, _check_cond(cond, rows, "observe_data"), "data")

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time spent in a named part of the step ("data", "step", ...)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._phase_seconds[name] += time.perf_counter() - start

    @_normal_tensors
    def step(self, step: int | None = None, loss: float | torch.Tensor | None = None, t: torch.Tensor | None = None,
             per_sample_loss: torch.Tensor | None = None, *, epoch: int | None = None, **scalars: Any) -> None:
        """Once per training step, after the optimizer step. Extra scalars are logged as given; tensors
        (for example a GAN's `d_real`, `d_fake`, an autoregressive model's `per_position_loss` of shape (B, ...) in
        nats) and strings (`d_output="prob"`) are handed to the probes. A loss or scalar given as a one-element tensor
        stays on its device until the next flush (see `flush_every`), where it is logged and checked: pass the tensor,
        not `loss.item()`, and the step never waits for the GPU.

        `step` is the global step and must increase. Two other ways to count:
        - `step=None`: the Monitor counts itself, one more than the last step (1 for the first call).
        - `epoch=e`: `step` is the batch index within epoch e (it restarts each epoch, `enumerate(loader)`); the
          global step is that index plus the epoch's offset, each epoch starting one after the last step of the
          one before (exact when every batch is reported). `epoch` is also logged as `train/epoch`."""
        step = self._global_step(step, epoch)
        if epoch is not None:
            scalars["epoch"] = epoch
        record = StepRecord(step=int(step), loss=_scalar(loss), t=_detach(t),
                            per_sample_loss=_detach(per_sample_loss))
        for key, value in scalars.items():
            if isinstance(value, torch.Tensor) and value.numel() != 1:  # an empty one too: a value, not a scalar
                record.tensors[key] = value.detach()
            elif isinstance(value, str):
                record.labels[key] = value
            elif isinstance(value, bool) or value is None:
                continue
            else:
                record.scalars[key] = _scalar(value)
        self._last_step = record.step
        self.ctx.step = record.step
        if self._phase_seconds:
            for phase_name, seconds in self._phase_seconds.items():
                self.ctx.log_scalar(f"time/{phase_name}", seconds, record.step)
            record.phases = dict(self._phase_seconds)
            self._phase_seconds.clear()
        self._dispatch("at_step", record)
        self._pending.add(record)
        together = self._checks_together(record.step)
        live_due = not together and self._live is not None and self._live.due(record.step)
        flush_due = self._flushes == 0 or record.step // self.flush_every > self._flushed_block
        if live_due or flush_due:
            self.flush()
        if together and flush_due:
            live_due = from_rank_0(self._live.due(record.step) if self.ranks.writes else None)
        if live_due:
            self._check_live(record.step, together)

    @property
    def should_stop(self) -> bool:
        """True once a live check found a finding at least as severe as `stop_on` (always False without it)."""
        return self._stopped_on is not None

    @property
    def stopped_on(self) -> tuple[Finding, int] | None:
        """The finding that made `should_stop` true and the step of the check that found it, or None."""
        return self._stopped_on

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        """Forward calls of watched networks inside this block are recorded as sampling."""
        before = self._mode
        self._mode = "sampling"
        self._sampling_session += 1
        try:
            yield
        finally:
            self._mode = before

    @_normal_tensors
    def observe_samples(self, samples: torch.Tensor, step: int | None = None, *, cond: Any = None) -> None:
        """Generated samples, for the quality and collapse probes. NaN or infinite rows are counted
        (`samples-nonfinite`, naming the first step) and the probes judge the finite rows; see `observe_data`.
        `cond`: the condition each sample was asked for (as given to `observe_data(x, cond=y)`), for
        `conditioning-ignored`."""
        step = self.ctx.step if step is None else int(step)
        samples = _check_batch(samples, "observe_samples")
        rows = samples.shape[0] if samples.dim() > 0 else 0
        samples = self.ctx.observed.screen(samples, "samples", step)
        if samples is None:
            return
        self._dispatch("on_samples", samples, step)
        if cond is not None and samples.shape[0] == rows:
            self._dispatch("on_conditions", samples, _check_cond(cond, rows, "observe_samples"), "samples")

    @_normal_tensors
    def observe_latents(self, mu: torch.Tensor, logvar: torch.Tensor, step: int | None = None) -> None:
        """A VAE's posterior parameters on one batch, for the latent-health probes. Rows where either holds NaN or
        infinite values are counted (`outputs-nonfinite`) and left out; mu and logvar of different shapes are
        skipped (`batch-skipped`); see `observe_data`."""
        step = self.ctx.step if step is None else int(step)
        observed = self.ctx.observed
        mu, logvar = _check_batch(mu, "observe_latents(mu)"), _check_batch(logvar, "observe_latents(logvar)")
        mu = observed.usable(mu, "latents", step)
        logvar = None if mu is None else observed.usable(logvar, "latents", step)
        if mu is None or logvar is None:
            return
        if mu.shape != logvar.shape:
            observed.skip("latents", step, f"mu of shape {tuple(mu.shape)} and logvar of shape "
                                            f"{tuple(logvar.shape)}; expected one shape")
            return
        keep = finite_rows(torch.cat([mu.flatten(1), logvar.flatten(1)], dim=1).float())
        bad = int((~keep).sum())
        observed.count("latents", step, int(mu.shape[0]), bad)
        if not bad:
            self._dispatch("on_latents", mu, logvar, step)
        elif bad < mu.shape[0]:
            self._dispatch("on_latents", mu[keep], logvar[keep], step)

    def add_section(self, title: str, text: str = "", figures: tuple[str, ...] | list[str] = (),
                    table: Any = None) -> None:
        """Add a section of your own to the report (figures saved with `save_figure`), shown before the probes'."""
        self._user_sections.append(ProbeSection(title=title, text=text, figures=list(figures), table=table))

    def add_conclusion(self, write: Callable[[list[Finding]], ProbeSection | None]) -> None:
        """`write(findings)` runs in `finish` once the findings exist and returns a section shown first in the
        report: an explanation that can quote the findings' own evidence."""
        self._conclusions.append(write)

    def save_figure(self, figure: Any, name: str, step: int | None = None, caption: str | None = None) -> str:
        """Save a matplotlib figure into the run folder and TensorBoard; returns its path for `add_section`.
        `caption`: one line shown under the figure in the report. The figure may be drawn in a child process: the
        file is complete once `finish` (or `close`) has run."""
        return self.ctx.save_figure(figure, name, step, caption)

    def log_scalar(self, tag: str, value: float, step: int | None = None) -> None:
        """Log a number of your own under `tag` (e.g. "eval/w2") at `step` (default: the last step) to every sink."""
        self.ctx.log_scalar(tag, float(value), self.ctx.step if step is None else int(step))

    def evaluate(self, name: str, x: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        """Run watched network `name` on (x, t) as the probes do: no gradients, its train/eval mode restored, not
        recorded as training or sampling, the output detached as float on the CPU."""
        return self.ctx.evaluate(name, x, t)

    @property
    def table(self) -> ScalarTable:
        """Every scalar logged so far as (step, tag, value) rows (`rows()`, `series(tag)`; `extend(rows)` to
        restore those of a resumed run); saved as metrics.csv by `finish`."""
        return self.ctx.table

    def close(self) -> None:
        """Close the sinks without writing a report, for a run abandoned before it trained (`finish` closes them
        itself). On a rank other than 0, its scratch folder goes too."""
        self.ctx.flush_figures()
        for sink in self.ctx.sinks:
            sink.close()
        if self.ranks is not None and not self.ranks.writes and self.run_dir.exists():
            remove_scratch(self.run_dir)

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's settings and headline figures, for TensorBoard's HParams dashboard (compare runs there); the
        figures are also scalars at the last step, in every sink."""
        self.ctx.tb.hparams(hparams, metrics)
        for tag, value in metrics.items():
            self.ctx.log_scalar(tag, float(value), self.ctx.step)

    def finish(self, *, partial: str | None = None) -> Report:
        """Final probe work, then findings.json, metrics.csv, report.md and report.html. Idempotent.

        `partial` marks an interrupted run (for example "stopped by SIGTERM at step 120")."""
        if self._finished is not None:
            return self._finished
        start = time.perf_counter()
        self.flush()
        for handle in self._hooks:
            handle.remove()
        if self.ranks is not None:
            combine(self.probes, self.ctx, self.ranks, complete=partial is None, last_step=self._last_step)
        if self.ranks is not None and not self.ranks.writes:
            self.close()
            self._finished = Report(self._shared_run_dir, findings=[], partial=partial)
            return self._finished
        sections: list[ProbeSection] = list(self._user_sections)
        for probe in list(self.probes):
            section = self._call(probe, "finish")
            if section is not None:
                sections.append(section)
        findings = self._findings([(probe, probe) for probe in self.probes])
        findings = sort_findings(link_consequences(findings + self._failures))
        conclusions, failed = self._conclude(findings)
        findings = sort_findings(findings + failed)
        cleared = sort_findings(self._stamp(findings))
        sections = conclusions + sections
        _leave_out(sections, self.ctx.draw_evidence({finding.code for finding in findings},
                                                    {finding.figure for finding in findings if finding.figure}))
        for section in sections:
            for figure in section.figures:
                if figure in self.ctx.captions:
                    section.captions.setdefault(figure, self.ctx.captions[figure])
        self.ctx.flush_figures()
        if self.ctx.drawer.failures:
            findings = sort_findings(findings + self._undrawn(sections, findings))
        _log_findings(self.ctx.sinks, findings, self.ctx.step)
        if self.ctx.layout:
            self.ctx.tb.layout(self.ctx.layout)
        self.close()
        self.ctx.table.save(self.run_dir / "metrics.csv")
        atomic_write_json(self.run_dir / "probe_data.json",
                          {p.name: p.state() for p in self.probes})
        self._finished = render_run(self.run_dir, findings, sections, partial=partial,
                                    finish_seconds=time.perf_counter() - start,
                                    steps=self.total_steps or self._last_step, cleared=cleared)
        return self._finished

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        partial = None if exc_type is None else f"stopped by {exc_type.__name__} at step {self._last_step}"
        self.finish(partial=partial)

    # -- internals --------------------------------------------------------------------------------

    def _global_step(self, step: int | None, epoch: int | None) -> int:
        """The global step of a `step` call (see `step`); raises ValueError where the count would not increase."""
        last = self._last_step
        if step is None:
            return 1 if last is None else last + 1
        step = int(step)
        if epoch is None:
            self._epoch = None
        else:
            epoch = int(epoch)
            if self._epoch is not None and epoch < self._epoch[0]:
                raise ValueError(f"Monitor.step: epochs must not go back, got epoch {epoch} after {self._epoch[0]}")
            if self._epoch is not None and epoch > self._epoch[0] and step > self._epoch[2]:
                raise ValueError(f"Monitor.step: with epoch=, step is the batch index within the epoch and restarts "
                                 f"each epoch; got {step} to open epoch {epoch} after {self._epoch[2]} in epoch "
                                 f"{self._epoch[0]} (for a global step, leave epoch= out)")
            if self._epoch is None or epoch > self._epoch[0]:
                offset = 0 if last is None else last + 1 - step
            else:
                offset = self._epoch[1]
            self._epoch = (epoch, offset, step)
            step += offset
        if last is not None and step <= last:
            raise ValueError(f"Monitor.step: steps must increase, got {step} after {last}")
        return step

    def flush(self) -> None:
        """Bring what the steps since the last flush gathered to the host now (one copy per device): log their loss
        and scalars, count the rows of the data batches and recorded outputs that held NaN or infinite values, hand
        each step's record to the probes, let the probes read their own device buffers. The Monitor flushes by
        itself (see `flush_every`); call it where the loop waits for the device anyway and wants everything logged,
        before a checkpoint."""
        self._flushes += 1
        self._flushed_block = (self._last_step or 0) // self.flush_every
        records, batches = self._pending.read()
        for where, step, rows, nonfinite in batches:
            self.ctx.observed.count(where, step, rows, nonfinite)
        for record in records:
            if record.loss is not None:
                self.ctx.log_scalar("loss/train", record.loss, record.step)
            for key, value in record.scalars.items():
                self.ctx.log_scalar(key if "/" in key else f"train/{key}", value, record.step)
            self._dispatch("on_step", record)
        self._dispatch("on_flush")

    def _checks_together(self, step: int) -> bool:
        """Whether this step's live check, if one is due, is a collective of every rank: under torch.distributed,
        once a check may come (`check_every` steps in) and where every rank made this Monitor (fixed then, once)."""
        if self.ranks is None or self._live is None or step < self._live.every:
            return False
        if self._together is None:
            self._together = checks_together(self.ranks)
        return self._together

    def _check_live(self, step: int, together: bool = False) -> None:
        """Ask every probe's rules now (a probe that raises is switched off as anywhere else), record what they
        found, and note the first finding that calls for a stop. `together`: a collective on every rank, whose
        probes' statistics rank 0 judges combined (`combined_view`) and whose stop every rank takes from rank 0."""
        start = time.perf_counter()
        live = [probe for probe in self.probes if probe.live]
        view = combined_view(live, self.ctx, self.ranks) if together else [(probe, probe) for probe in live]
        if view is not None:
            findings = self._findings(view)
            self._live.record(step, findings, spent=time.perf_counter() - start)
            if self._stopped_on is None:
                worst = sort_findings([f for f in findings if stops(f, self.stop_on)])
                if worst:
                    self._stopped_on = (worst[0], step)
        if together:
            self._stopped_on = from_rank_0(self._stopped_on)

    def _findings(self, view: list[tuple[Probe, Probe]]) -> list[Finding]:
        """Each probe's findings, asked of the probe paired with it (itself, or a combined copy), each named by its
        probe; a probe that raises is switched off (`_call`)."""
        findings: list[Finding] = []
        for probe, asked in view:
            for finding in self._call(probe, "findings", through=asked) or []:
                finding.probe = finding.probe or probe.name
                findings.append(finding)
        return findings

    def _stamp(self, findings: list[Finding]) -> list[Finding]:
        """Put on each final finding the step it first held (the last step for a finding no live check saw, or the
        run without live checks); return the announced findings that cleared before the end."""
        last = self._last_step if self._last_step is not None else 0
        if self._live is None:
            for finding in findings:
                finding.first_step = finding.first_step if finding.first_step is not None else last
            return []
        running = {probe.name for probe in self.probes}
        return self._live.stamp(findings, last, gone=lambda finding: finding.probe not in running)

    def _forward_hook(self, name: str, hooked: torch.nn.Module) -> Any:
        watched = self.ctx.models[name]

        @_normal_tensors
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            if module is not hooked:  # a copy.deepcopy of the watched network carries this hook along
                return
            if self.ctx.recording_suspended or (watched.ema_of is not None and self._mode != "sampling"):
                return
            self._forward_calls[name] += 1
            if self._mode == "train" and (self._forward_calls[name] - 1) % self._record_every:
                return
            x, t, cond = _call_inputs(name, watched, args, kwargs)
            times = None
            if isinstance(x, torch.Tensor) and x.dim() > 0:
                times = batch_times(t, x.shape[0], f"Monitor.watch({name!r})", WATCH_HINT)
                if self._mode == "train" and watched.inputs is None:
                    watched.note_time(t, x.shape[0])
            head = output_head = None
            doubled = False
            if self._mode == "sampling" and isinstance(x, torch.Tensor) and x.dim() > 0:
                head = x.detach()[:HEAD_ROWS].float().cpu()
                if isinstance(output, torch.Tensor) and output.dim() > 0:
                    output_head = output.detach()[:HEAD_ROWS].float().cpu()
                half = x.shape[0] // 2
                doubled = half > 0 and x.shape[0] % 2 == 0 and torch.equal(x[:half], x[half:])
            conditioned = cond is not _UNREAD
            cond = _call_cond(name, cond, x) if conditioned else None
            x, t, out, cond = _rows((x, times, output, cond), self.record_rows, self._row_picker)
            if self._mode == "sampling":
                x, t, out, cond = screen_call(self.ctx.observed, name, self._mode, self.ctx.step, x, t, out, cond)
            else:
                self._pending.add_outputs(out, f"training outputs of {name!r}", self.ctx.step)
            call = ForwardCall(model=watched.ema_of or name, mode=self._mode, step=self.ctx.step, x=x, t=t,
                               output=out, head=head, output_head=output_head,
                               session=self._sampling_session if self._mode == "sampling" else 0,
                               via=name if watched.ema_of else None,
                               conditioned=conditioned, cond=cond, doubled=doubled)
            self.ctx.guidance.add(call)
            self._dispatch("on_forward", call)

        return hook

    def _step_hook(self, method: str, optimizer: torch.optim.Optimizer) -> None:
        """A watched optimizer's step, to the probes unless recording is suspended (`gendiag attach` suspends it
        over the rounds it leaves unrecorded)."""
        if not self.ctx.recording_suspended:
            self._dispatch(method, optimizer)

    def _dispatch(self, method: str, *args: Any) -> None:
        listeners = self._listeners.get(method)
        if listeners is None:  # the probes whose class overrides the callback: most leave most of them empty
            listeners = [probe for probe in self.probes if getattr(type(probe), method) is not getattr(Probe, method)]
            self._listeners[method] = listeners
        for probe in listeners:
            self._call(probe, method, *args)

    def _call(self, probe: Probe, method: str, *args: Any, through: Probe | None = None) -> Any:
        """`probe.method(ctx, *args)` (or `through`'s: a combined copy of `probe`), guarded: a probe that raises is
        switched off and reported, and training goes on."""
        try:
            return getattr(through or probe, method)(self.ctx, *args)
        except Exception as error:  # a probe must never stop the user's training
            if self.strict:
                raise
            self._disable(probe, method, error)
            return None

    def _disable(self, probe: Probe, method: str, error: Exception) -> None:
        self.probes.remove(probe)
        self._listeners.clear()
        self._failures.append(self._failed(probe.name, method, error, "this probe's results are missing"))

    def _conclude(self, findings: list[Finding]) -> tuple[list[ProbeSection], list[Finding]]:
        """The conclusions' sections, guarded like probes: one that raises becomes a `probe-failed` finding (or
        stops `finish` under `strict`) and the report goes on without it."""
        sections: list[ProbeSection] = []
        failed: list[Finding] = []
        for write in self._conclusions:
            try:
                section = write(findings)
            except Exception as error:  # the user's conclusion must not cost them the report
                if self.strict:
                    raise
                name = f"conclusion {getattr(write, '__qualname__', type(write).__name__)}"
                failed.append(self._failed(name, "add_conclusion", error, "its section is missing"))
                continue
            if section is not None:
                section.conclusion = True
                sections.append(section)
        return sections, failed

    def _undrawn(self, sections: list[ProbeSection], findings: list[Finding]) -> list[Finding]:
        """Figures whose drawing raised (collected after their probe's `finish`): taken out of the sections and
        findings that name them, each reported as a `probe-failed` finding."""
        if self.strict:
            raise self.ctx.drawer.failures[0][1]
        failed = []
        for path, error in self.ctx.drawer.failures:
            relative = str(path.relative_to(self.run_dir))
            for section in sections:
                section.figures = [figure for figure in section.figures if figure != relative]
            for finding in findings:
                finding.figure = None if finding.figure == relative else finding.figure
            failed.append(self._failed(f"figure {path.stem}", "draw_figure", error, "this figure is missing"))
        self.ctx.drawer.failures.clear()
        return failed

    def _failed(self, name: str, method: str, error: Exception, missing: str) -> Finding:
        """The `probe-failed` finding for a probe (or conclusion) that raised, its traceback saved under
        probe_errors/."""
        log = self.run_dir / "probe_errors" / f"{_file_name(name)}.txt"
        atomic_write_text(log, "".join(traceback.format_exception(error)))
        return Finding(
            code="probe-failed", severity="info",
            title=f"Probe {name} failed and was switched off",
            message=f"{name}.{method} raised {type(error).__name__}: {error}. Training went on; "
                    f"{missing} from the report.",
            evidence={"probe": name, "method": method, "step": self.ctx.step,
                      "traceback": str(log.relative_to(self.run_dir))},
            suggestion="Check the inputs this probe needs (see the traceback file); report a bug if they are right.",
            probe=name, first_step=self.ctx.step,
        )


_UNREAD = object()  # the condition of a call whose watch does not read one


def _compiled_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module a `torch.compile` wrapper runs (its `_orig_mod`); any other module itself."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def _call_inputs(name: str, watched: WatchedModel, args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    """(x, t, cond) of one forward call, through the watch's `inputs` where given, else x_arg, t_arg and cond_arg;
    cond is `_UNREAD` where the watch reads no condition."""
    if watched.inputs is None:
        cond = _UNREAD if watched.cond_arg is None else _argument(args, kwargs, watched.cond_arg)
        return _argument(args, kwargs, watched.x_arg), _argument(args, kwargs, watched.t_arg), cond
    try:
        found = watched.inputs(args, kwargs)
    except Exception as error:  # the user's extractor: name the watch and the call it could not read
        raise ValueError(f"Monitor.watch({name!r}): inputs(args, kwargs) raised {type(error).__name__}: {error} on a "
                         f"call with {len(args)} positional arguments and keywords {sorted(kwargs)}") from error
    if not isinstance(found, tuple) or len(found) not in (2, 3):
        raise ValueError(f"Monitor.watch({name!r}): inputs(args, kwargs) must return (x, t) or (x, t, cond), got "
                         f"{type(found).__name__}" + (f" of {len(found)}" if isinstance(found, tuple) else ""))
    return (*found, _UNREAD) if len(found) == 2 else found


def _call_cond(name: str, cond: Any, x: Any) -> torch.Tensor | None:
    """A watched call's condition as a (B, ...) tensor aligned with x (one label broadcast to the batch), or None
    for a call that passed none."""
    if cond is None or not isinstance(x, torch.Tensor) or x.dim() == 0:
        return None
    if isinstance(cond, numbers.Real) and not isinstance(cond, bool):
        cond = torch.tensor(cond)
    if not isinstance(cond, torch.Tensor):
        raise ValueError(f"Monitor.watch({name!r}): the condition must be a tensor or a number, got "
                         f"{type(cond).__name__}")
    cond = cond.detach()
    if cond.numel() == 1:
        return cond.reshape(1).expand(x.shape[0])
    if cond.dim() == 0 or cond.shape[0] != x.shape[0]:
        raise ValueError(f"Monitor.watch({name!r}): the condition has shape {tuple(cond.shape)} for a batch of "
                         f"{x.shape[0]}; expected one row per row of x")
    return cond


_RUN_FILES = ("report.md", "report.html", "findings.json", "sections.json", "metrics.csv", "probe_data.json",
              JOURNAL)
_RUN_FOLDERS = ("figures", "probe_errors")


def _claim_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse a folder that holds an earlier run (its tb/ event files would mix with the new ones), or clear what
    a Monitor wrote there when `overwrite` is set. Files the Monitor does not write are left alone."""
    files = [run_dir / name for name in _RUN_FILES if (run_dir / name).is_file()]
    files += sorted((run_dir / "tb").glob("events.out.tfevents.*"))
    folders = [run_dir / name for name in _RUN_FOLDERS if (run_dir / name).is_dir()]
    if files and not overwrite:
        held = ", ".join(str(path.relative_to(run_dir)) for path in files[:3]) + (", ..." if len(files) > 3 else "")
        raise FileExistsError(f"Monitor: {run_dir} already holds a run ({held}); pass overwrite=True to replace it, "
                              "or give a new folder")
    if not overwrite:
        return
    for path in files:
        path.unlink()
    for folder in folders:
        shutil.rmtree(folder)


def _argument(args: tuple, kwargs: dict, where: int | str | None) -> Any:
    if where is None:
        return None
    if isinstance(where, str):
        return kwargs.get(where)
    return args[where] if where < len(args) else None


def _rows(values: tuple[Any, ...], rows: int, picker: RowPicker) -> list[torch.Tensor | None]:
    """At most `rows` rows of each tensor, chosen at random and aligned across the tensors, as float on their
    device (a copy: the loop may overwrite its tensors)."""
    return [None if value is None else value.to(torch.float32, copy=True)
            for value in aligned_rows(values, rows, picker)]


def _scalar(value: float | torch.Tensor | None) -> float | torch.Tensor | None:
    """A number as a float; a tensor detached, left on its device until the flush reads it. A loss given per row
    (more than one value) stands for its mean; an empty tensor for no loss (never an error: these are values)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() == 0:
            return None
        value = value.detach()
        return value.reshape(()) if value.numel() == 1 else value.float().mean()
    return float(value)


def _detach(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else torch.as_tensor(value).detach()


def _check_batch(batch: Any, where: str) -> torch.Tensor:
    """`batch` itself; what is not a tensor is the caller's programming error, a TypeError naming `where`. Its
    values and shape are screened by `ObservedValues`, never refused."""
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"Monitor.{where}: expected a torch.Tensor, got {type(batch).__name__}")
    return batch


def _check_cond(cond: Any, rows: int, where: str) -> torch.Tensor:
    """A batch's conditions as a detached tensor with one row per batch row (a number or list becomes a tensor)."""
    if not isinstance(cond, torch.Tensor):
        try:
            cond = torch.as_tensor(cond)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"Monitor.{where}: cond must be a tensor of one condition per row, got "
                            f"{type(cond).__name__}") from error
    cond = cond.detach()
    if cond.dim() == 0 or cond.shape[0] != rows:
        raise ValueError(f"Monitor.{where}: cond has shape {tuple(cond.shape)} for a batch of {rows} rows; expected "
                         f"({rows},) labels or ({rows}, K) rows")
    return cond


def _file_name(name: str) -> str:
    """A probe's or conclusion's name as a file name (a lambda's `<lambda>`, spaces and dots made plain)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _findings_text(findings: list[Finding]) -> str:
    if not findings:
        return "No findings."
    return "\n\n".join(f"**{f.severity.upper()}** `{f.code}` — {f.title}: {f.message}" for f in findings)


LEFT_OUT = ("*Figure not drawn: it shows findings that did not hold in this run "
            "(`Monitor(figures=\"all\")` draws every figure).*")


def _leave_out(sections: list[ProbeSection], left_out: list[str]) -> None:
    """Take the figures left undrawn out of their sections, with a line saying why."""
    undrawn = set(left_out)
    for section in sections:
        if undrawn.intersection(section.figures):
            section.figures = [figure for figure in section.figures if figure not in undrawn]
            section.text = f"{section.text}\n\n{LEFT_OUT}" if section.text else LEFT_OUT


def _log_findings(sinks: list[Sink], findings: list[Finding], last_step: int) -> None:
    """All findings as one text at the run's last step ("findings"), and each under "findings/<code>" at the step it
    first appeared (`first_step` where the finding has one, else the last step)."""
    for sink in sinks:
        sink.text("findings", _findings_text(findings), last_step)
        for finding in findings:
            first = getattr(finding, "first_step", None)  # set by live diagnosis; absent on findings made at the end
            text = _findings_text([finding]) + (f"\n\n{finding.suggestion}" if finding.suggestion else "")
            sink.text(f"findings/{finding.code}", text, last_step if first is None else int(first))

"""The listener behind `gendiag attach`: it turns what the global hooks see into a `Monitor`'s inputs.

For its first rounds (a round: from one step of the first optimizer to its next) it only watches: which networks
are called and how, which optimizers step, what the losses are made of. Then it infers the task (`infer.py`),
builds the Monitor, watches the networks and optimizers there, and from then on feeds it the rounds its
`Schedule` records (`schedule.py`); over the others it only counts training calls and steps, with the Monitor's own
hooks suspended, until a sampling or evaluation call, which is always recorded:
- `Monitor.step` once per recorded round: the loss (the sum of the round's backward passes), and for flow and
  diffusion the per-sample losses, times and target sizes read from the loss's graph (`graph.py`); for a GAN the
  two losses and the discriminator's outputs on real and on generated batches;
- training and sampling calls: a call without gradients or in eval mode is sampling when every row has one time
  (an evaluation with random times per row is left out), and the Monitor's own hooks record it as such;
- data: DataLoader batches; without a DataLoader, for flow matching the end point the regression implies
  (x + (1 - t) * target, the data end taken from the direction the sampler walks), a GAN discriminator's real
  inputs or a VAE's inputs;
- the source: the first inputs of each sampling run; samples: a flow sampler's last state moved by its last
  velocity to the end of time, a generator's or decoder's outputs in sampling.
Errors inside it never reach the script: observation stops and the report says why.

Over 400 lines: one listener holding the state of a whole attached run (what it has seen of each network,
optimizer and loss); the stateless parts are apart (`hooks`, `graph`, `infer`, `convention`, `records`).
"""

from __future__ import annotations

import contextlib
import functools
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import torch

from gendiag.attach.convention import argument, read_convention, row_times
from gendiag.attach.graph import describe, find_regression
from gendiag.attach.hooks import GlobalHooks
from gendiag.attach.infer import Inference, NetworkSeen, infer_task, trained_by
from gendiag.attach.records import (
    Fitted, Round, SamplingRun, Thinning, first_batch, mentions, output_tensors, pointer,
)
from gendiag.attach.schedule import LONGEST, Schedule
from gendiag.io import atomic_write_text
from gendiag.monitor import Monitor
from gendiag.pending import FLUSH_EVERY
from gendiag.report import Report

WARMUP_ROUNDS = 3
RECENT_OUTPUTS = 32
BUFFERED_BATCHES = 8
# The Monitor's steps are the recorded rounds, numbered by round: its default flush every FLUSH_EVERY step numbers
# would come at almost every recorded round past the full ones, three quarters of such a round's cost (4.5 ms
# against 1.1 ms on the healthy flow script). Its live checks, at least 2 s apart (`gendiag.live`), flush too.
FLUSH_ROUNDS = FLUSH_EVERY * LONGEST
LOGIT_LOSSES = ("BinaryCrossEntropyWithLogitsBackward0", "SoftplusBackward0", "LogSigmoidBackward0")


def _trains(module: torch.nn.Module) -> bool:
    """Whether a call of `module` now is a training call: in train mode, with gradients, outside inference mode."""
    return module.training and torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """A hook callback that never raises into the script: an error stops observation and is reported."""

    @functools.wraps(method)
    def wrapper(self: "Session", *args: Any) -> Any:
        if self.stopped is not None:
            return None
        try:
            return method(self, *args)
        except Exception as error:  # the user's script must run on whatever gendiag gets wrong
            self._fail(method.__name__, error)
            return None

    return wrapper


class Session:
    """Receives the hooks' events (see `gendiag.attach.hooks.Listener`) and feeds a Monitor it builds itself."""

    def __init__(self, run_dir: str | Path, task: str | None = None, facts: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.forced_task = task
        self.facts = dict(facts or {})
        self.networks: dict[int, NetworkSeen] = {}
        self.optimizers: list[torch.optim.Optimizer] = []
        self.monitor: Monitor | None = None
        self.inference: Inference | None = None
        self.rounds = 0
        self.round = Round()
        self.pending = Round()
        self.recent: dict[Any, tuple[tuple[NetworkSeen, Any, torch.Tensor | None], torch.Tensor]] = {}
        self.latest: dict[str, torch.Tensor] = {}
        self.starts_offered: set[tuple[Any, ...]] = set()
        self.run: SamplingRun | None = None
        self.first_sampling_t: float | None = None
        self.buffered_ends: dict[float, list[torch.Tensor]] = {1.0: [], 0.0: []}
        self.buffered_batches: list[torch.Tensor] = []
        self.data_thinning, self.loader_thinning, self.latent_thinning = Thinning(), Thinning(), Thinning()
        self.mode = "train"
        self.mode_context = contextlib.ExitStack()
        self.schedule = Schedule(first_round=WARMUP_ROUNDS + 1)
        self.quiet = False  # between steps of a round left unrecorded: the hooks only count
        self.hooks: GlobalHooks | None = None  # set by `installed`: narrowed while quiet
        self.quiet_context = contextlib.ExitStack()
        self.round_started: float | None = None
        self.recorded_rounds = 0
        self.backward_passes = 0
        self.recognised: Counter[str] = Counter()
        self.unrecognised: Counter[str] = Counter()
        self.loader_batches = 0
        self.sampling_runs = 0
        self.samples_seen = 0
        self.sources_seen = 0
        self.data_seen: Counter[str] = Counter()
        self.logit_loss = False
        self.d_output = "prob"
        self.last_fake: torch.Tensor | None = None
        self.stopped: str | None = None
        self.error_file: str | None = None

    # -- hook callbacks ---------------------------------------------------------------------------------

    @_guarded
    def after_call(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if self.quiet:  # hooks left wide while quiet (narrowing refused inside a module call)
            if not self._wakes(module):
                return
            self._set_quiet(False)  # sampling or an evaluation: watched in full
        if self.monitor is not None and self.monitor.ctx.recording_suspended and self.mode != "skip":
            return  # a probe running the network itself
        network = self._network(module)
        if network.convention is None:
            network.convention = read_convention(args, kwargs)
        convention = network.convention
        x = argument(args, kwargs, convention.x_arg) if convention is not None else None
        batch = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else None
        raw_t = argument(args, kwargs, convention.t_arg) if convention is not None and batch else None
        t = row_times(raw_t, batch) if batch else None
        outputs = output_tensors(output)
        fed_by = (self._fed_by(network, args, kwargs)
                  if self.inference is None or self.inference.task == "gan" else None)
        if outputs:
            self.latest[network.name] = outputs[0].detach()  # held, so its memory is not reused by another tensor
        training = _trains(module)
        if training:
            if batch:
                self.schedule.saw_batch(batch)
            self._set_mode("train")
            self._end_sampling_run()
            self._training_call(network, x, t, raw_t, outputs, fed_by)
        elif t is not None and t.numel() > 1 and not bool((t == t[0]).all()):
            network.skipped_calls += 1  # an evaluation at random times, not a sampler
            self._set_mode("skip")
        else:
            self._set_mode("sampling")
            self._sampling_call(network, x, t, outputs)

    @_guarded
    def wakes(self, module: torch.nn.Module) -> bool:
        """Asked by narrowed hooks before a top-level call: a training call while quiet is only counted; any other
        call wakes the hooks, and `after_call` then sees it in full."""
        return self._wakes(module)

    def _wakes(self, module: torch.nn.Module) -> bool:
        if self.quiet and _trains(module):
            self._network(module).train_calls += 1
            return False
        return True

    @_guarded
    def before_backward(self, tensors: Any) -> None:
        loss = tensors if isinstance(tensors, torch.Tensor) else (
            tensors[0] if isinstance(tensors, (tuple, list)) and tensors and isinstance(tensors[0], torch.Tensor)
            else None)
        if loss is None or loss.numel() != 1 or loss.grad_fn is None:
            return
        self.backward_passes += 1
        if self.quiet:
            return
        self.pending.losses.append((float(loss.detach()), None))
        if self.rounds <= WARMUP_ROUNDS and not self.logit_loss:
            self.logit_loss = mentions(loss, LOGIT_LOSSES)
        regression = find_regression(loss, self.recent) if self.recent else None
        if regression is None:
            self.unrecognised[describe(loss)] += 1
            return
        self.recognised[regression.node] += 1
        (network, x, t), output = regression.call, regression.output
        network.regressions += 1
        residual = regression.residual.float()
        target = output.detach().float() - residual
        ends = None
        if (t is not None and isinstance(x, torch.Tensor) and x.shape == target.shape and not self.loader_batches
                and self.data_thinning.take()):
            column = t.to(target.device).reshape(-1, *([1] * (target.dim() - 1)))
            x = x.detach().float()
            ends = {1.0: x + (1 - column) * target, 0.0: x - column * target}
        self.pending.fitted.append(Fitted(network.name, t, residual.pow(2).flatten(1).mean(1),
                                        target.flatten(1).norm(dim=1), ends))

    @_guarded
    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.quiet and self._stays_quiet(optimizer):
            return
        if not self.optimizers or optimizer is self.optimizers[0]:
            self._time_round()
        self._set_quiet(False)
        if not any(optimizer is known for known in self.optimizers):
            self.optimizers.append(optimizer)
            if self.monitor is not None:
                self.monitor.watch_optimizer(optimizer)
        self._end_sampling_run()
        if optimizer is self.optimizers[0]:
            if self.rounds:
                self._close_round()
            self.rounds += 1
            if self.monitor is None and self.rounds > WARMUP_ROUNDS:
                self._start_monitor()
        self.round.take(self.pending, next(i for i, known in enumerate(self.optimizers) if known is optimizer))
        self.pending = Round()
        if self.monitor is not None:  # the Monitor's own step hooks, next, read this step for its round only
            self._set_mode("train")
            self._set_quiet(not self.schedule.records(self.rounds))

    def _stays_quiet(self, optimizer: torch.optim.Optimizer) -> bool:
        """The quiet path of a step (most steps of a long run): a known optimizer's step between unrecorded rounds
        has no round to close and nothing to hand over (quiet calls record nothing), so it only counts the round."""
        if not any(optimizer is known for known in self.optimizers):
            return False
        first = optimizer is self.optimizers[0]
        if self.schedule.records(self.rounds) or (first and self.schedule.records(self.rounds + 1)):
            return False
        if first:
            self._time_round()
            self.rounds += 1
        return True

    @_guarded
    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.recent.clear()
        if self.monitor is not None:  # the calls until the next step join the next round, or this one
            shared = len(self.optimizers) > 1 and self.schedule.records(self.rounds)
            self._set_quiet(not (shared or self.schedule.records(self.rounds + 1)))

    @_guarded
    def on_batch(self, batch: Any) -> None:
        rows = first_batch(batch)
        if rows is None:
            return
        self.loader_batches += 1
        if not self.loader_thinning.take():
            return
        if self.monitor is None:
            self.buffered_batches = (self.buffered_batches + [rows.detach()])[-BUFFERED_BATCHES:]
        else:
            self._offer_data(rows, "DataLoader batches")

    # -- the end ----------------------------------------------------------------------------------------

    def finish(self, partial: str | None = None, header: str = "") -> Report:
        """Close the last round and sampling run, write what was inferred into the report, and finish the
        Monitor (built now if the script ended before its first rounds were over)."""
        from gendiag.attach.summary import inferred_section

        self._set_quiet(False)
        if self.stopped is None:
            try:
                if self.monitor is None:
                    self._start_monitor()
                self._end_sampling_run()
                self.round.take(self.pending, None)
                if self.rounds:
                    self._close_round()
                self._flush_ends(final=True)
                if self.inference.task == "gan" and not self.samples_seen and self.last_fake is not None:
                    self._offer_samples(self.last_fake)
            except Exception as error:  # as in the hooks: report it, still write what was measured
                self._fail("finish", error)
        self._set_mode("train")
        self.stopped = self.stopped or "finished"
        if self.monitor is None:  # only when building it failed
            self.monitor = Monitor(self.run_dir, task=self.forced_task or "generic")
        title, text = inferred_section(self, header)
        self.monitor.add_section(title, text=text)
        return self.monitor.finish(partial=partial)

    # -- internals --------------------------------------------------------------------------------------

    def _fail(self, where: str, error: Exception) -> None:
        self.stopped = f"{where} raised {type(error).__name__}: {error}"
        path = self.run_dir / "probe_errors" / "attach.txt"
        atomic_write_text(path, "".join(traceback.format_exception(error)))
        self.error_file = str(path.relative_to(self.run_dir))

    def _network(self, module: torch.nn.Module) -> NetworkSeen:
        network = self.networks.get(id(module))
        if network is None or network.module is not module:
            base = type(module).__name__
            taken = {n.name for n in self.networks.values()}
            name = base if base not in taken else next(f"{base}_{k}" for k in range(2, 10_000)
                                                        if f"{base}_{k}" not in taken)
            network = self.networks[id(module)] = NetworkSeen(module, name)
        return network

    def _fed_by(self, network: NetworkSeen, args: tuple, kwargs: dict) -> str | None:
        """The network whose latest output is an argument of this call (detached or not), if any."""
        if not self.latest:
            return None
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor):
                address = pointer(value)
                for name, latest in self.latest.items():
                    if name != network.name and address is not None and pointer(latest) == address:
                        self.networks_by_name()[name].feeds.add(network.name)
                        return name
        return None

    def networks_by_name(self) -> dict[str, NetworkSeen]:
        return {n.name: n for n in self.networks.values()}

    def _training_call(self, network: NetworkSeen, x: Any, t: torch.Tensor | None, raw_t: Any,
                       outputs: list[torch.Tensor], fed_by: str | None) -> None:
        network.train_calls += 1
        if network.train_calls <= 16:
            self._learn(network, x, t, raw_t, outputs)
        for output in outputs:
            if output.grad_fn is not None:
                self.recent[output.grad_fn] = ((network, x, t), output)
        while len(self.recent) > RECENT_OUTPUTS:
            self.recent.pop(next(iter(self.recent)))
        if self.monitor is None:
            return
        roles = self.inference.roles
        if self.inference.task == "gan" and outputs:
            if network.name == roles.get("discriminator"):
                (self.pending.d_fake if fed_by == roles.get("generator") else self.pending.d_real).append(
                    outputs[0].detach())
                if (fed_by != roles.get("generator") and isinstance(x, torch.Tensor) and not self.loader_batches
                        and self.data_thinning.take()):
                    self._offer_data(x, "the discriminator's real inputs")
            elif network.name == roles.get("generator"):
                self.last_fake = outputs[0].detach()
        elif self.inference.task == "vae" and network.name == roles.get("main") and network.latent_pair:
            first, second = network.latent_pair
            if self.latent_thinning.take():
                self.monitor.observe_latents(outputs[first].detach(), outputs[second].detach())
                if isinstance(x, torch.Tensor) and not self.loader_batches:
                    self._offer_data(x, "the VAE's inputs")

    def _learn(self, network: NetworkSeen, x: Any, t: torch.Tensor | None, raw_t: Any,
               outputs: list[torch.Tensor]) -> None:
        """What the first training calls tell about a network: its input shape, its time's kind and range, a
        (mean, log-variance) pair among its outputs, its output's range (a discriminator's probabilities)."""
        if isinstance(x, torch.Tensor) and network.input_shape is None:
            network.input_shape = tuple(x.shape[1:])
        if t is not None:
            integer = isinstance(raw_t, int) or (isinstance(raw_t, torch.Tensor) and not raw_t.is_floating_point())
            network.integer_time = network.integer_time or integer
            network.time_max = max(network.time_max, float(t.max()))
        batch = x.shape[0] if isinstance(x, torch.Tensor) else None
        if network.latent_pair is None and len(outputs) >= 3 and batch is not None:
            shapes = [tuple(o.shape) for o in outputs]
            network.latent_pair = next(((i, j) for i in range(len(shapes)) for j in range(i + 1, len(shapes))
                                        if shapes[i] == shapes[j] and len(shapes[i]) == 2 and shapes[i][0] == batch
                                        and shapes[i] != tuple(x.shape)), None)
        elif network.latent_pair is None and len(outputs) == 2 and outputs[0].shape == outputs[1].shape \
                and outputs[0].dim() == 2 and batch is not None and outputs[0].shape[0] == batch:
            network.latent_pair = (0, 1)
        if outputs and outputs[0].numel() and outputs[0].is_floating_point():
            low, high = float(outputs[0].detach().min()), float(outputs[0].detach().max())
            before = network.out_range or (low, high)
            network.out_range = (min(low, before[0]), max(high, before[1]))

    def _sampling_call(self, network: NetworkSeen, x: Any, t: torch.Tensor | None,
                       outputs: list[torch.Tensor]) -> None:
        network.sampling_calls += 1
        first_t = None if t is None else float(t[0])
        run = self.run
        if run is None or run.network is not network or (first_t is not None and first_t == run.first_t):
            self._end_sampling_run()
            run = self.run = SamplingRun(network, first_t)
            self.sampling_runs += 1
            if self.first_sampling_t is None and first_t is not None:
                self.first_sampling_t = first_t
                self._flush_ends(final=False)
            if (self.monitor is not None and self.inference.task in ("flow", "diffusion")
                    and network.name == self.inference.roles.get("main") and network.has_time
                    and isinstance(x, torch.Tensor)):  # without a time argument x may hold more than the state
                self._offer_start(x)
        run.calls += 1
        run.last = (x, t, outputs[0] if outputs else None)
        if self.monitor is None or not outputs:
            return
        roles, task = self.inference.roles, self.inference.task
        main = self.networks_by_name().get(roles.get("main", ""))
        if task == "gan" and network.name == roles.get("generator"):
            self._offer_samples(outputs[0])
        elif (task == "vae" and main is not None and network is not main and main.input_shape is not None
              and tuple(outputs[0].shape[1:]) == main.input_shape):
            # a decoder trained through a loss on logits (BCE with logits) returns logits: its samples are their sigmoid
            self._offer_samples(torch.sigmoid(outputs[0]) if self.logit_loss else outputs[0])

    def _end_sampling_run(self) -> None:
        """A flow sampler's run ends: its last state, moved by its last velocity to the data end of time, is its
        sample (exactly the last Euler step when the steps are equal)."""
        run, self.run = self.run, None
        if run is None or run.last is None or self.monitor is None or self.inference.task != "flow":
            return
        x, t, velocity = run.last
        if (run.network.name != self.inference.roles.get("main") or t is None or velocity is None
                or not isinstance(x, torch.Tensor) or velocity.shape != x.shape):
            return
        end = self._data_end()
        column = t.to(x.device).reshape(-1, *([1] * (x.dim() - 1)))
        self._offer_samples(x.detach().float() + (end - column) * velocity.detach().float())

    def _data_end(self) -> float:
        """The end of time the data sits at: the one the sampler walks towards (1 when nothing sampled)."""
        return 0.0 if self.first_sampling_t is not None and self.first_sampling_t > 0.5 else 1.0

    def _time_round(self) -> None:
        """Tell the schedule how long the round that ends at this step of the first optimizer took."""
        now = time.perf_counter()
        if self.round_started is not None:
            if self.monitor is None:
                self.schedule.unwatched(now - self.round_started)
            else:
                self.schedule.round_took(self.rounds + 1, now - self.round_started)
        self.round_started = now

    def _set_quiet(self, quiet: bool) -> None:
        """Leave the calls and steps to come unrecorded (the Monitor's hooks suspended too), or record again."""
        if quiet == self.quiet:
            return
        self.quiet = quiet
        if quiet:
            self.quiet_context.enter_context(self.monitor.ctx.suspended_recording())
        else:
            self.quiet_context.close()
        if self.hooks is not None:
            if quiet:
                self.hooks.narrow()
            else:
                self.hooks.widen()

    def _close_round(self) -> None:
        round_, self.round = self.round, Round()
        if self.monitor is None or not self.schedule.records(self.rounds):
            return
        self.recorded_rounds += 1
        step, task, roles = self.rounds, self.inference.task, self.inference.roles
        total = sum(value for value, _ in round_.losses) if round_.losses else None
        if task == "gan":
            owners = trained_by(list(self.networks.values()), self.optimizers)
            sums = {role: [v for v, i in round_.losses if i == owners.get(roles[role])]
                    for role in ("generator", "discriminator")}
            scalars: dict[str, Any] = {}
            if sums["discriminator"]:
                scalars["loss_d"] = sum(sums["discriminator"])
            if sums["generator"]:
                scalars["loss_g"] = sum(sums["generator"])
            if round_.d_real and round_.d_fake:
                scalars.update(d_real=torch.cat([d.reshape(-1) for d in round_.d_real]),
                               d_fake=torch.cat([d.reshape(-1) for d in round_.d_fake]), d_output=self.d_output)
            self.monitor.step(step, **scalars)
            return
        mine = [f for f in round_.fitted if f.network == roles.get("main") and f.t is not None]
        for fitted in mine:
            if fitted.ends is not None:
                self._offer_ends(fitted.ends)
        if task in ("flow", "diffusion") and mine:
            self.monitor.step(step, total, t=torch.cat([f.t for f in mine]),
                              per_sample_loss=torch.cat([f.per_sample for f in mine]),
                              target_norm=torch.cat([f.target_norm for f in mine]))
        else:
            self.monitor.step(step, total)

    def _offer_ends(self, ends: dict[float, torch.Tensor]) -> None:
        if self.task_reads_ends() and self.first_sampling_t is not None:
            self._offer_data(ends[self._data_end()], "end points of the regression target")
        elif self.task_reads_ends():
            for end, batch in ends.items():
                self.buffered_ends[end] = (self.buffered_ends[end] + [batch])[-BUFFERED_BATCHES:]

    def task_reads_ends(self) -> bool:
        return self.inference is not None and self.inference.task == "flow" and not self.loader_batches

    def _flush_ends(self, final: bool) -> None:
        """Hand the buffered end points to the Monitor once the data end is known (at the end: assumed 1)."""
        if self.monitor is None or (self.first_sampling_t is None and not final):
            return
        for batch in self.buffered_ends[self._data_end()]:
            self._offer_data(batch, "end points of the regression target")
        self.buffered_ends = {1.0: [], 0.0: []}

    def _start_monitor(self) -> None:
        networks = list(self.networks.values())
        self.inference = infer_task(networks, self.optimizers, self.forced_task)
        self.monitor = Monitor(self.run_dir, task=self.inference.task, flush_every=FLUSH_ROUNDS, **self.facts)
        by_name = self.networks_by_name()
        if self.inference.task == "gan":
            discriminator = by_name.get(self.inference.roles.get("discriminator", ""))
            low, high = (discriminator.out_range if discriminator is not None and discriminator.out_range
                         else (0.0, 1.0))
            self.d_output = "prob" if low >= 0.0 and high <= 1.0 else "logit" if self.logit_loss else "critic"
            watched = [by_name[self.inference.roles[r]] for r in ("generator", "discriminator")
                       if r in self.inference.roles]
        elif "main" in self.inference.roles:
            watched = [by_name[self.inference.roles["main"]]]
        else:
            owners = trained_by(networks, self.optimizers)
            watched = [n for n in networks if n.name in owners]
        for network in watched:
            convention = network.convention
            timed = self.inference.task in ("flow", "diffusion") and network.has_time
            self.monitor.watch(network.module, name=network.name, x_arg=convention.x_arg if convention else 0,
                               t_arg=convention.t_arg if timed else None)
        for optimizer in self.optimizers:
            self.monitor.watch_optimizer(optimizer)
        for batch in self.buffered_batches:
            self._offer_data(batch, "DataLoader batches")
        self.buffered_batches = []

    def _set_mode(self, mode: str) -> None:
        """What the Monitor's own hooks record the current call as: training, sampling, or nothing ("skip")."""
        if mode == self.mode:
            return
        self.mode_context.close()
        self.mode = mode
        if self.monitor is None or mode == "train":
            return
        self.mode_context.enter_context(self.monitor.sampling() if mode == "sampling"
                                        else self.monitor.ctx.suspended_recording())

    def _offer_data(self, batch: torch.Tensor, origin: str) -> None:
        if self._offer(batch, "data"):
            self.data_seen[origin] += 1

    def _offer(self, batch: torch.Tensor, role: str) -> bool:
        batch = batch.detach()
        if batch.dim() < 2 or not batch.shape[0]:
            return False
        if batch.is_floating_point() and not bool(torch.isfinite(batch).all()):
            return False
        self.monitor.observe_data(batch, role=role)
        if role == "source":
            self.sources_seen += 1
        return True

    def _offer_start(self, x: torch.Tensor) -> None:
        """The sampler's first inputs, as source rows; a start batch reused at every checkpoint counts once."""
        fingerprint = (tuple(x.shape), float(x.detach().double().sum()), float(x.detach().reshape(-1)[0]))
        if fingerprint not in self.starts_offered:
            self.starts_offered.add(fingerprint)
            self._offer(x, "source")

    def _offer_samples(self, samples: torch.Tensor) -> None:
        samples = samples.detach()
        if samples.dim() >= 2 and samples.shape[0] and bool(torch.isfinite(samples).all()):
            self.monitor.observe_samples(samples)
            self.samples_seen += 1

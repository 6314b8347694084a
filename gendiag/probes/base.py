"""The probe contract: a quantity computed on a schedule, turned into report sections and findings.

A probe receives what the Monitor sees (steps, watched forward calls, data batches, samples) through the
`on_*` callbacks, keeps what it needs, gives its findings whenever asked (`findings`, at any time) and at the end
writes its section (`finish`). Probes never change training state: no gradient clearing, no draws from the
user's random generators, no mode switches left behind (use `ProbeContext.evaluate` to run a watched network).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from gendiag.findings import Finding

from gendiag.report.section import ProbeSection

if TYPE_CHECKING:
    from gendiag.context import ProbeContext

TASKS = ("flow", "diffusion", "gan", "vae", "autoregressive", "generic")
HEAD_ROWS = 16  # rows of a sampling call's x kept in their own order, the same rows call after call


@dataclass
class StepRecord:
    """What the training loop reported for one step."""

    step: int
    loss: float | torch.Tensor | None  # a tensor (on its device) until the flush reads it; a float in `on_step`
    t: torch.Tensor | None = None
    per_sample_loss: torch.Tensor | None = None
    scalars: dict[str, float | torch.Tensor] = field(default_factory=dict)  # floats in `on_step`
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # seconds of each phase timed in this step (mon.phase)


@dataclass
class ForwardCall:
    """A watched network's forward call: a few rows of its inputs and output, detached, as float on the network's
    device (a probe moves them to the host at a flush, not per call; the sampling calls' `head` rows are on the
    CPU). The rows are chosen at random and come in random order (the same rows of x, t and output), so any prefix
    of them is a uniform sample of the call's batch, however the user's batch is ordered."""

    model: str
    mode: str  # "train" or "sampling"
    step: int
    x: torch.Tensor | None
    t: torch.Tensor | None
    output: torch.Tensor | None
    head: torch.Tensor | None = None  # sampling calls only: x's first HEAD_ROWS rows in order, to follow the state
    output_head: torch.Tensor | None = None  # sampling calls only: the output's same first rows
    session: int = 0  # which `with mon.sampling():` block the call came from (0 for training calls)
    via: str | None = None  # the EMA copy that made this sampling call, recorded under the network it follows
    conditioned: bool = False  # the watch reads a condition (cond_arg, or inputs returning (x, t, cond))
    cond: torch.Tensor | None = None  # the call's condition, the same rows as x; None in a call that passed none
    doubled: bool = False  # sampling calls only: x is one batch twice over (cat([x, x]), a batched guided call)


class Probe:
    """Base class. Subclasses set `name`, the `tasks` they apply to, whether they are in the default set,
    and override the callbacks they need. `every` is the step interval of the per-step work. A probe that wants
    forward calls for some tasks only sets `self.wants_forward` in `setup`."""

    name: ClassVar[str] = "probe"
    tasks: ClassVar[tuple[str, ...]] = TASKS
    default: ClassVar[bool] = True
    wants_forward: ClassVar[bool] = False
    # Whether live checks ask this probe's rules: False for one whose rules run the user's own code at length and
    # whose findings are all outcomes (never announced, never a stop), so a check would only cost time.
    live: ClassVar[bool] = True

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"probe {self.name}: every must be >= 1, got {every}")
        self.every = every

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def setup(self, ctx: "ProbeContext") -> None:
        """Called once, when the Monitor starts (or when a network is watched, for `on_watch`)."""

    def on_watch(self, ctx: "ProbeContext", name: str, module: torch.nn.Module) -> None:
        """A network was put under watch."""

    def on_optimizer(self, ctx: "ProbeContext", optimizer: torch.optim.Optimizer) -> None:
        """An optimizer was put under watch: its steps are announced by the two callbacks below."""

    def before_optimizer_step(self, ctx: "ProbeContext", optimizer: torch.optim.Optimizer) -> None:
        """Just before a watched optimizer's step: its parameters hold the gradients the step uses."""

    def after_optimizer_step(self, ctx: "ProbeContext", optimizer: torch.optim.Optimizer) -> None:
        """Just after a watched optimizer's step."""

    def at_step(self, ctx: "ProbeContext", record: StepRecord) -> None:
        """Right at each `Monitor.step`, before its numbers reach the host: device work only, nothing that makes
        the host wait (`record.loss` and `record.scalars` may still be tensors on the training device)."""

    def on_step(self, ctx: "ProbeContext", record: StepRecord) -> None:
        """For each training step, in order, at the flush that follows it (every `flush_every` steps, see
        `Monitor`): `record.loss` and `record.scalars` are floats by then; `record.step` is the step's own."""

    def on_flush(self, ctx: "ProbeContext") -> None:
        """At each flush, after `on_step` of the steps since the last one: read what was kept on the device."""

    def on_forward(self, ctx: "ProbeContext", call: ForwardCall) -> None:
        """A recorded forward call of a watched network (only for probes with `wants_forward`)."""

    def on_data(self, ctx: "ProbeContext", batch: torch.Tensor, role: str) -> None:
        """A batch of training data (role "data") or of the source/noise distribution (role "source")."""

    def on_samples(self, ctx: "ProbeContext", samples: torch.Tensor, step: int) -> None:
        """Generated samples."""

    def on_conditions(self, ctx: "ProbeContext", batch: torch.Tensor, cond: torch.Tensor, kind: str) -> None:
        """The condition of each row (`cond`, B rows) of a data batch (kind "data") or of generated samples (kind
        "samples"), given as `observe_data(x, cond=y)` or `observe_samples(x, cond=y)`; after `on_data`/`on_samples`."""

    def on_latents(self, ctx: "ProbeContext", mu: torch.Tensor, logvar: torch.Tensor, step: int) -> None:
        """A VAE encoder's posterior parameters for one batch (mean and log-variance, shape (B, latent))."""

    def finish(self, ctx: "ProbeContext") -> ProbeSection | None:
        """At the end of the run: the last logging, the figures; returns the report section (or None for nothing
        to show). The Monitor calls `findings` after it."""
        return None

    def findings(self, ctx: "ProbeContext") -> list[Finding]:
        """The rules on what has been gathered so far. Callable at any time during training (after any step, any
        number of times), so it must be pure (it changes nothing the probe keeps, draws no figure, writes no
        TensorBoard and no files) and cheap (cache an expensive summary keyed on how much has been gathered); after
        `finish` it gives the run's findings. A finding may name its figure's path before the figure is drawn."""
        return []

    def state(self) -> dict[str, Any]:
        """Summary numbers kept in the run folder (probe_data.json) for `gendiag report` and comparisons."""
        return {}


def not_run(probe: str, reason: str) -> Finding:
    """An info finding: `probe` could not do its work because of how the network was watched (`reason`, one line
    from `ProbeContext.cannot_evaluate`); shown instead of a traceback."""
    return Finding(code="probe-not-run", severity="info", title=f"Probe {probe} did not run",
                   message=f"Probe {probe} needs to run the network itself, but the {reason}.",
                   suggestion="Give mon.watch a call= that runs the network on (x, t), t a (B,) tensor.", probe=probe)


class ReadsTrainingCallsAtFlush(Probe):
    """A probe whose handling of a training call (`take_call`) or data batch (`take_data`) reads values on the
    host: they are kept as they come, on their device, and handed over at the next flush (or at once in sampling),
    so that recording a call or observing a batch never makes the training step wait for the device."""

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self._unread_calls: list[ForwardCall] = []
        self._unread_data: list[tuple[torch.Tensor, str]] = []

    def take_call(self, ctx: "ProbeContext", call: ForwardCall) -> None:
        """One recorded call, its values readable."""

    def take_data(self, ctx: "ProbeContext", batch: torch.Tensor, role: str) -> None:
        """One observed batch, its values readable."""

    def on_forward(self, ctx: "ProbeContext", call: ForwardCall) -> None:
        if call.mode == "train":
            self._unread_calls.append(call)
        else:
            self.take_call(ctx, call)

    def on_data(self, ctx: "ProbeContext", batch: torch.Tensor, role: str) -> None:
        self._unread_data.append((batch, role))

    def on_flush(self, ctx: "ProbeContext") -> None:
        calls, data = self._unread_calls, self._unread_data
        self._unread_calls, self._unread_data = [], []
        for batch, role in data:
            self.take_data(ctx, batch, role)
        for call in calls:
            self.take_call(ctx, call)


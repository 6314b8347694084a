"""PyTorch Lightning: `GendiagCallback` puts a gendiag `Monitor` on a LightningModule's training.

    trainer = lightning.Trainer(..., callbacks=[GendiagCallback("runs/my_run", task="flow")])

At `on_fit_start` it watches the LightningModule's networks (its direct submodules that hold parameters, or those
named in `watch=`) and hooks every optimizer the Trainer built, so gradients are read just before each optimizer
step whatever the loop does, under automatic and manual optimization alike (a GAN's two optimizers included). Each
training batch is observed as data; the output of `training_step` is read after each batch: its `loss` is the
step's loss, its `source` (the noise batch a flow or a diffusion starts from) is observed as the source, and every
other key goes to `Monitor.step` as given (`t=`, `per_sample_loss=`, a GAN's `d_real=`, `d_fake=`, `d_output=`,
`loss_d=`, `loss_g=`). Forward calls during validation are not recorded. At `on_fit_end` the optional
`sample(module)` runs under `Monitor.sampling()` and its samples are observed, then the report is written; on an
exception the report is written marked partial.

Works with the `lightning` package (`lightning.pytorch`) and, where that is missing, with `pytorch_lightning`.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any, Callable

import torch

from gendiag.integrations import require
from gendiag.monitor import Monitor


def _lightning() -> Any:
    """`lightning.pytorch`, else `pytorch_lightning`; one ImportError line naming the extra when neither imports."""
    for module in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    return require("lightning.pytorch", "lightning", "lightning")


_pl = _lightning()

TIMED_TASKS = ("flow", "diffusion")  # tasks whose networks take (x, t) by default
WATCH_KEYS = ("x_arg", "t_arg", "inputs", "call")


class GendiagCallback(_pl.Callback):
    """A Lightning callback that diagnoses the training it is attached to.

    Args:
        run_dir: the run folder, as for `Monitor`.
        task: "flow", "diffusion", "gan", "vae" or "generic", as for `Monitor`.
        watch: which networks of the LightningModule to watch: None for every direct submodule holding parameters,
            a list of attribute names, or a dict from attribute name to the keywords of `Monitor.watch`
            (`x_arg`, `t_arg`, `inputs`, `call`). Unless given, a network is called as `net(x, t)` for the flow and
            diffusion tasks and as `net(x)` for the others.
        data: `data(batch) -> tensor`, the training data in a batch; by default the batch itself when it is a
            tensor, else its first element (a `TensorDataset` or an `(x, y)` pair).
        sample: `sample(module) -> samples`, run at the end of training in eval mode, without gradients and under
            `Monitor.sampling()`, so the probes see the sampler's calls; its result is observed as samples.
        **monitor_kwargs: the other arguments of `Monitor` (`probes=`, `every=`, `overwrite=`, facts such as
            `schedule=`, `modes=`).
    """

    def __init__(self, run_dir: str | Path, task: str = "generic", *,
                 watch: list[str] | dict[str, dict[str, Any]] | None = None,
                 data: Callable[[Any], torch.Tensor] | None = None,
                 sample: Callable[[torch.nn.Module], torch.Tensor] | None = None,
                 **monitor_kwargs: Any) -> None:
        super().__init__()
        if watch is not None and not isinstance(watch, (list, tuple, dict)):
            raise TypeError(f"GendiagCallback: watch must be a list of attribute names or a dict of them, got "
                            f"{type(watch).__name__}")
        for what, function in (("data", data), ("sample", sample)):
            if function is not None and not callable(function):
                raise TypeError(f"GendiagCallback: {what} must be callable, got {type(function).__name__}")
        self.run_dir = Path(run_dir)
        self.task = task
        self._watch = watch
        self._data = data
        self._sample = sample
        self._monitor_kwargs = monitor_kwargs
        self.monitor: Monitor | None = None
        self._validating = contextlib.ExitStack()

    # -- Lightning's hooks ------------------------------------------------------------------------

    def on_fit_start(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        if self.monitor is not None:
            return
        self.monitor = Monitor(self.run_dir, task=self.task, **self._monitor_kwargs)
        for name, keywords in self._networks(pl_module).items():
            self.monitor.watch(getattr(pl_module, name), name=name, **keywords)
        for optimizer in trainer.optimizers:
            self.monitor.watch_optimizer(optimizer)

    def on_validation_start(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        if self.monitor is not None:
            self._validating.enter_context(self.monitor.ctx.suspended_recording())

    def on_validation_end(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        self._validating.close()

    def on_train_batch_start(self, trainer: Any, pl_module: torch.nn.Module, batch: Any, batch_idx: int) -> None:
        if self.monitor is None:
            return
        data = self._data(batch) if self._data is not None else _first_tensor(batch)
        if data is not None:
            self.monitor.observe_data(data, role="data")

    def on_train_batch_end(self, trainer: Any, pl_module: torch.nn.Module, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.monitor is None:
            return
        if isinstance(outputs, torch.Tensor):
            outputs = {"loss": outputs}
        values = dict(outputs) if isinstance(outputs, dict) else {}
        loss = values.pop("loss", None)
        source = values.pop("source", None)
        if source is not None:
            self.monitor.observe_data(source, role="source")
        self.monitor.step(None, loss, **values)

    def on_fit_end(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        if self.monitor is None:
            return
        if self._sample is not None:
            was_training = pl_module.training
            pl_module.eval()
            try:
                with self.monitor.sampling(), torch.no_grad():
                    samples = self._sample(pl_module)
            finally:
                pl_module.train(was_training)
            if not isinstance(samples, torch.Tensor):
                raise TypeError(f"GendiagCallback: sample(module) must return a tensor of samples, got "
                                f"{type(samples).__name__}")
            self.monitor.observe_samples(samples)
        self.monitor.finish()

    def on_exception(self, trainer: Any, pl_module: torch.nn.Module, exception: BaseException) -> None:
        if self.monitor is not None:
            self._validating.close()
            self.monitor.finish(partial=f"stopped by {type(exception).__name__} at step {self.monitor.ctx.step}")

    # -- internals --------------------------------------------------------------------------------

    def _networks(self, pl_module: torch.nn.Module) -> dict[str, dict[str, Any]]:
        """The attribute names of the networks to watch, each with its keywords for `Monitor.watch`."""
        default = {"x_arg": 0, "t_arg": 1 if self.task in TIMED_TASKS else None}
        if self._watch is None:
            names = [name for name, child in pl_module.named_children() if any(True for _ in child.parameters())]
            if not names:
                raise ValueError(f"GendiagCallback: {type(pl_module).__name__} has no submodule holding parameters "
                                 "to watch; name the networks with watch=[...]")
            return {name: dict(default) for name in names}
        chosen = self._watch if isinstance(self._watch, dict) else {name: {} for name in self._watch}
        networks = {}
        for name, keywords in chosen.items():
            child = getattr(pl_module, name, None)
            if not isinstance(child, torch.nn.Module):
                raise ValueError(f"GendiagCallback: watch names {name!r}, but {type(pl_module).__name__}.{name} is "
                                 f"not a torch.nn.Module")
            unknown = sorted(set(keywords) - set(WATCH_KEYS))
            if unknown:
                raise ValueError(f"GendiagCallback: watch[{name!r}] has unknown keys {unknown}; expected some of "
                                 f"{list(WATCH_KEYS)}")
            networks[name] = {**default, **keywords}
        return networks


def _first_tensor(batch: Any) -> torch.Tensor | None:
    """The batch itself when it is a tensor of shape (B, ...), else the first element of a list or tuple that is."""
    if isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    if isinstance(batch, torch.Tensor) and batch.dim() >= 2 and batch.is_floating_point():
        return batch
    return None


"""Hugging Face diffusers: `DiffusersMonitor`, a `Monitor` for a loop built from a diffusers scheduler
(`DDPMScheduler`, `DDIMScheduler`, any with `alphas_cumprod` and `add_noise`) and a UNet (`UNet2DModel`, or any
network called as `unet(sample, timestep)`).

    mon = DiffusersMonitor("runs/unet", scheduler, unet, optimizer=opt)

What it takes from the library so the loop need not say it:
- the schedule fact (ᾱ_t) is the scheduler's own `alphas_cumprod`;
- the UNet is watched as `unet(sample, timestep, ...)`, positional or by keyword, and `timestep` is read as t in the
  scheduler's own scale (integer steps 0 .. num_train_timesteps - 1, as `add_noise` and `scheduler.timesteps` have
  them; a loop that feeds t on another scale shows as such). The probes run it as `unet(x, t).sample`;
- each training call of `scheduler.add_noise(clean, noise, timesteps)` is observed: `clean` as the data, `noise` as
  the source.
The loop still reports its steps (`mon.step(step, loss, t=timesteps, per_sample_loss=...)`) and runs its sampler
inside `with mon.sampling():`; a sampler that passes the UNet t on another scale than training did is named
(`train-sample-input-mismatch`, from the inputs probe).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from gendiag.integrations import require, wrap_method, x_and_t
from gendiag.monitor import Monitor

require("diffusers", "diffusers", "diffusers")


class DiffusersMonitor(Monitor):
    """A diffusion `Monitor` that reads its schedule from `scheduler`, watches `unet` (when given) with the
    UNet's call convention and observes the data and noise of each training `scheduler.add_noise` call.

    Args:
        run_dir: the run folder, as for `Monitor`.
        scheduler: a diffusers scheduler with `alphas_cumprod` (DDPMScheduler, DDIMScheduler, ...).
        unet: the denoiser, called as `unet(sample, timestep)`; or watch it later with `watch_unet`.
        optimizer: the optimizer that trains it, for gradients read at each optimizer step.
        name: the UNet's name in the report.
        **monitor_kwargs: the other arguments of `Monitor` (`probes=`, `every=`, `overwrite=`, facts); the task is
            "diffusion" and the `schedule` fact is the scheduler's.
    """

    def __init__(self, run_dir: str | Path, scheduler: Any, unet: torch.nn.Module | None = None, *,
                 optimizer: torch.optim.Optimizer | None = None, name: str = "unet", **monitor_kwargs: Any) -> None:
        for taken in ("task", "schedule"):
            if taken in monitor_kwargs:
                raise ValueError(f"DiffusersMonitor: {taken}= is set from the scheduler; leave it out")
        schedule = getattr(scheduler, "alphas_cumprod", None)
        if not isinstance(schedule, torch.Tensor):
            raise TypeError(f"DiffusersMonitor: scheduler must be a diffusers scheduler with alphas_cumprod "
                            f"(DDPMScheduler, DDIMScheduler, ...), got {type(scheduler).__name__}")
        super().__init__(run_dir, task="diffusion", schedule=schedule.detach().cpu(), **monitor_kwargs)
        self.scheduler = scheduler
        self._restore = (wrap_method(scheduler, "add_noise", self._observed_add_noise)
                         if callable(getattr(scheduler, "add_noise", None)) else lambda: None)
        if unet is not None:
            self.watch_unet(unet, name=name, optimizer=optimizer)

    def watch_unet(self, unet: torch.nn.Module, name: str = "unet",
                   optimizer: torch.optim.Optimizer | None = None) -> torch.nn.Module:
        """Watch a network called as `unet(sample, timestep, ...)` (positional or by keyword; its output a tensor, a
        diffusers output with `.sample`, or a tuple whose first element is the prediction)."""
        return self.watch(unet, name=name, inputs=_unet_inputs, call=_unet_call, optimizer=optimizer)

    def finish(self, *, partial: str | None = None) -> Any:
        """As `Monitor.finish`; also gives the scheduler its own `add_noise` back."""
        self._restore()
        return super().finish(partial=partial)

    def _observed_add_noise(self, add_noise: Any) -> Any:
        @functools.wraps(add_noise)
        def observed(original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
            if self._mode == "train" and not self.ctx.recording_suspended:
                self.observe_data(original_samples, role="data")
                self.observe_data(noise, role="source")
            return add_noise(original_samples, noise, timesteps)

        return observed


_unet_inputs = x_and_t("sample", "timestep")  # unet(sample, timestep, ...)


def _unet_call(unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The UNet's prediction on (x, t): `.sample` of a diffusers output, the first element of a tuple."""
    out = unet(x, t)
    if hasattr(out, "sample"):
        return out.sample
    if isinstance(out, tuple):
        return out[0]
    return out

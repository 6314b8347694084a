"""denoising-diffusion-pytorch: `GaussianDiffusionMonitor`, a diffusion `Monitor` for a loop that trains a
`GaussianDiffusion` (lucidrains' package), whose loss is computed inside its own `forward`.

    mon = GaussianDiffusionMonitor("runs/ddpm", diffusion, optimizer=opt)
    loss = diffusion(images); loss.backward(); opt.step(); mon.step(step, loss)
    samples = diffusion.sample(batch_size=64)      # recorded as sampling, its samples observed

Watching the inner network is enough; the rest is read from the `GaussianDiffusion` object:
- the schedule fact (ᾱ_t) is its `alphas_cumprod`, and t is read in its own scale (integer steps 0 .. T - 1);
- its network (`diffusion.model`, called as `model(x, t, x_self_cond)`) is watched; the probes run it as
  `model(x, t)`;
- each training call of `q_sample(x_start, t, noise)` is observed: `x_start` (the images after the object's own
  `normalize`) as the data, `noise` as the source;
- the per-sample loss and t of each training step are read from `p_losses` (its per-sample losses, weighted as the
  object weights them, are what its `forward` averages), so `mon.step(step, loss)` needs nothing more;
- `diffusion.sample(...)` runs inside `mon.sampling()`, and its samples, taken back through `normalize` to the
  data's scale, are observed.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from gendiag.integrations import require, wrap_method, x_and_t
from gendiag.monitor import Monitor

require("denoising_diffusion_pytorch", "denoising_diffusion", "denoising-diffusion")

WRAPPED = ("q_sample", "p_losses", "sample")  # the GaussianDiffusion methods the Monitor observes through


class GaussianDiffusionMonitor(Monitor):
    """A diffusion `Monitor` that reads its schedule from `diffusion`, watches its network, observes the data and
    noise of each training `q_sample`, the per-sample losses of each `p_losses` and the samples of `sample`.

    Args:
        run_dir: the run folder, as for `Monitor`.
        diffusion: a `denoising_diffusion_pytorch.GaussianDiffusion` (anything with `alphas_cumprod`, `model`,
            `q_sample`, `p_losses`, `normalize` and `sample`).
        optimizer: the optimizer that trains it, for gradients read at each optimizer step.
        name: the network's name in the report.
        **monitor_kwargs: the other arguments of `Monitor` (`probes=`, `every=`, `overwrite=`, facts); the task is
            "diffusion" and the `schedule` fact is the object's.
    """

    def __init__(self, run_dir: str | Path, diffusion: Any, *, optimizer: torch.optim.Optimizer | None = None,
                 name: str = "unet", **monitor_kwargs: Any) -> None:
        for taken in ("task", "schedule"):
            if taken in monitor_kwargs:
                raise ValueError(f"GaussianDiffusionMonitor: {taken}= is read from the GaussianDiffusion; leave it out")
        schedule = getattr(diffusion, "alphas_cumprod", None)
        missing = [method for method in (*WRAPPED, "normalize") if not callable(getattr(diffusion, method, None))]
        if not isinstance(schedule, torch.Tensor) or not isinstance(getattr(diffusion, "model", None),
                                                                     torch.nn.Module) or missing:
            raise TypeError(f"GaussianDiffusionMonitor: diffusion must be a denoising_diffusion_pytorch "
                            f"GaussianDiffusion (with alphas_cumprod, model, {', '.join(WRAPPED)} and normalize), "
                            f"got {type(diffusion).__name__}")
        super().__init__(run_dir, task="diffusion", schedule=schedule.detach().cpu(), **monitor_kwargs)
        self.diffusion = diffusion
        self._last_loss: tuple[torch.Tensor, torch.Tensor] | None = None  # (t, per-sample loss) of the last step
        self._restores = [wrap_method(diffusion, "q_sample", self._observed_q_sample),
                          wrap_method(diffusion, "p_losses", self._observed_p_losses),
                          wrap_method(diffusion, "sample", self._observed_sample)]
        self.watch(diffusion.model, name=name, inputs=_model_inputs, call=_model_call, optimizer=optimizer)

    def step(self, step: int | None = None, loss: float | torch.Tensor | None = None, t: torch.Tensor | None = None,
             per_sample_loss: torch.Tensor | None = None, **kwargs: Any) -> None:
        """As `Monitor.step`; t and the per-sample loss default to those of the last training `p_losses` call."""
        if self._last_loss is not None and t is None and per_sample_loss is None:
            t, per_sample_loss = self._last_loss
        self._last_loss = None
        super().step(step, loss, t=t, per_sample_loss=per_sample_loss, **kwargs)

    def finish(self, *, partial: str | None = None) -> Any:
        """As `Monitor.finish`; also gives the GaussianDiffusion its own methods back."""
        for restore in self._restores:
            restore()
        return super().finish(partial=partial)

    def _training(self) -> bool:
        return self._mode == "train" and not self.ctx.recording_suspended and torch.is_grad_enabled()

    def _observed_q_sample(self, q_sample: Any) -> Any:
        @functools.wraps(q_sample)
        def observed(x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
            if noise is None:
                noise = torch.randn_like(x_start)
            if self._training():
                self.observe_data(x_start, role="data")
                self.observe_data(noise, role="source")
            return q_sample(x_start, t, noise)

        return observed

    def _observed_p_losses(self, p_losses: Any) -> Any:
        @functools.wraps(p_losses)
        def observed(x_start: torch.Tensor, t: torch.Tensor, *args: Any, loss_reduction: str = "mean",
                     **kwargs: Any) -> torch.Tensor:
            per_sample = p_losses(x_start, t, *args, loss_reduction="none", **kwargs)
            if self._training():
                self._last_loss = (t.detach(), per_sample.detach())
            return per_sample if loss_reduction == "none" else per_sample.mean()

        return observed

    def _observed_sample(self, sample: Any) -> Any:
        @functools.wraps(sample)
        def observed(*args: Any, **kwargs: Any) -> torch.Tensor:
            with self.sampling():
                samples = sample(*args, **kwargs)
            if isinstance(samples, torch.Tensor) and samples.dim() == 4:  # not return_all_timesteps' (B, T+1, ...)
                self.observe_samples(self.diffusion.normalize(samples))
            return samples

        return observed


_model_inputs = x_and_t("x", "time")  # model(x, time, x_self_cond): lucidrains' Unet


def _model_call(net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return net(x, t)

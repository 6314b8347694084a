"""Calling the user's sampler: the signature each kind must have, the fields it is handed (exact, recording every
call), and the one-line errors for a sampler that cannot be called as documented.

A `SamplerContractError` is bad input (wrong arity, an exception, a wrong shape): not a property that fails, so it
is never an AssertionError. This module keeps its own small recording field rather than importing the sampler
probe's `RecordingField`: the checks need every row's time and the diffusion step behind it, and the probe is a
report module that may change on its own."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from gendiag.testing.targets import GaussianMixture

SIGNATURES = {
    "flow": "sampler(velocity_fn, x0, steps) -> x1",
    "ddpm": "sampler(eps_fn, x_T, betas, steps, generator) -> x_0",
    "ddim": "sampler(eps_fn, x_T, betas, steps) -> x_0",
}


class SamplerContractError(TypeError):
    """The sampler cannot be called as its kind's signature says, or broke the contract (one line)."""


@dataclass
class Record:
    """What a sampler passed to the field: each call's state (B, D) float64 and time (B,) as the sampler gave it."""

    states: list[torch.Tensor] = field(default_factory=list)
    times: list[torch.Tensor] = field(default_factory=list)

    def first_times(self) -> list[float]:
        return [float(t[0]) for t in self.times]


def read_times(t: Any, rows: int, label: str, what: str) -> torch.Tensor:
    """A time given as a float, a 0-d, (B,) or (B, 1) tensor, as a (B,) float64 tensor."""
    times = torch.as_tensor(t, dtype=torch.float64).detach().cpu()
    if times.dim() == 2 and times.shape[1] == 1:
        times = times[:, 0]
    if times.dim() == 0 or times.shape == (1,):
        return times.reshape(1).expand(rows)
    if times.shape != (rows,):
        raise SamplerContractError(f"{label}: {what} got t of shape {tuple(times.shape)}; expected a float, a 0-d, "
                                   f"({rows},) or ({rows}, 1) tensor")
    return times


class FlowField:
    """The target's exact velocity, recording each call (t = 0 at the source, 1 at the data)."""

    def __init__(self, target: GaussianMixture, label: str) -> None:
        self.target, self.label, self.record = target, label, Record()

    def __call__(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        _check_state(x, self.target.dim, self.label, "velocity_fn")
        times = read_times(t, x.shape[0], self.label, "velocity_fn")
        self.record.states.append(x.detach().double().cpu().clone())
        self.record.times.append(times.clone())
        return self.target.velocity(x.detach().cpu(), times.clamp(0, 1)).to(dtype=x.dtype, device=x.device)


class NoiseField:
    """The target's exact noise prediction ε(x_t, t), recording each call. The sampler passes t = step·scale/T for
    the integer step 0 … T−1 (scale = T: the step itself); ᾱ between integer steps is interpolated in log ᾱ and
    steps outside 0 … T−1 are clamped, so a sampler on another scale still runs and the time check names it."""

    def __init__(self, target: GaussianMixture, betas: torch.Tensor, time_scale: float | None, label: str) -> None:
        self.target, self.label, self.record = target, label, Record()
        self.steps = betas.shape[0]
        self.scale = float(self.steps if time_scale is None else time_scale)
        self.log_abar = torch.cumsum(torch.log1p(-betas.double()), 0)

    def step_of(self, t: torch.Tensor) -> torch.Tensor:
        """The schedule step behind a time the sampler passed."""
        return t * self.steps / self.scale

    def __call__(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        _check_state(x, self.target.dim, self.label, "eps_fn")
        times = read_times(t, x.shape[0], self.label, "eps_fn")
        self.record.states.append(x.detach().double().cpu().clone())
        self.record.times.append(times.clone())
        return self.target.eps(x.detach().cpu(), self.alpha_bar(times)).to(dtype=x.dtype, device=x.device)

    def alpha_bar(self, times: torch.Tensor) -> torch.Tensor:
        """ᾱ at each time the sampler passed (B,), float64."""
        step = self.step_of(times).clamp(0, self.steps - 1)
        low = step.floor().long().clamp(max=self.steps - 2) if self.steps > 1 else step.floor().long()
        frac = step - low
        high = (low + 1).clamp(max=self.steps - 1)
        return torch.exp((1 - frac) * self.log_abar[low] + frac * self.log_abar[high])


class CleanField(NoiseField):
    """The same target's exact x0 prediction E[x0 | x_t] in place of the noise: what a sampler that reads its
    network's output as x0 needs to follow the target."""

    def __call__(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        eps = super().__call__(x, t).double()
        abar = self.alpha_bar(self.record.times[-1]).reshape(-1, *([1] * (x.dim() - 1)))
        return ((x.double() - (1 - abar).sqrt() * eps) / abar.sqrt()).to(dtype=x.dtype, device=x.device)


def _check_state(x: Any, dim: int, label: str, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != dim:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SamplerContractError(f"{label}: {what} got a state of shape {shape}; expected (B, {dim})")


@dataclass
class Sampler:
    """The user's sampler with its kind, the name to show, and (diffusion) the time scale it passes t on."""

    fn: Callable[..., Any]
    kind: str
    label: str
    time_scale: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in SIGNATURES:
            raise ValueError(f"check-sampler: kind must be one of {sorted(SIGNATURES)}, got {self.kind!r}")
        if self.time_scale is not None and not 0 < self.time_scale < float("inf"):
            raise ValueError(f"check-sampler: time_scale must be a number > 0, got {self.time_scale}")
        if not callable(self.fn):
            raise SamplerContractError(f"{self.label}: is a {type(self.fn).__name__}, not a callable; expected "
                                       f"{SIGNATURES[self.kind]}")
        try:
            signature = inspect.signature(self.fn)
        except (TypeError, ValueError):
            return  # a builtin or C callable without a signature: its first call tells
        arity = len(SIGNATURES[self.kind].split("(")[1].split(")")[0].split(","))
        try:
            signature.bind(*range(arity))
        except TypeError:
            raise SamplerContractError(f"{self.label}: takes {signature}, expected {SIGNATURES[self.kind]}") from None

    def flow(self, field_: FlowField, x0: torch.Tensor, steps: int) -> torch.Tensor:
        return self._call((field_, x0.clone(), steps), x0, f"velocity_fn, x0 {tuple(x0.shape)}, steps={steps}")

    def diffusion(self, field_: NoiseField, x_T: torch.Tensor, betas: torch.Tensor, steps: int,
                  generator: torch.Generator | None) -> torch.Tensor:
        args: tuple[Any, ...] = (field_, x_T.clone(), betas.clone(), steps)
        if self.kind == "ddpm":
            args += (generator,)
        return self._call(args, x_T, f"eps_fn, x_T {tuple(x_T.shape)}, betas ({betas.shape[0]},), steps={steps}"
                          + (", generator" if self.kind == "ddpm" else ""))

    def _call(self, args: tuple[Any, ...], start: torch.Tensor, shown: str) -> torch.Tensor:
        try:
            with torch.no_grad():
                out = self.fn(*args)
        except SamplerContractError:
            raise
        except Exception as error:  # the user's code: any exception is bad input, reported in one line
            message = " ".join(str(error).split())
            raise SamplerContractError(f"{self.label}: raised {type(error).__name__}: {message} (called as "
                                       f"sampler({shown}))") from error
        if not isinstance(out, torch.Tensor) or out.shape != start.shape:
            got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
            raise SamplerContractError(f"{self.label}: returned {got}; expected a tensor of the start's shape "
                                       f"{tuple(start.shape)} (called as sampler({shown}))")
        return out.detach().double().cpu()

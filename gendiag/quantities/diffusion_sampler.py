"""How a diffusion sampler reads its network's output, from the network's own calls inside `mon.sampling()`.

Each step of a DDPM or DDIM sampler makes its next state from the state x it passed the network at step i and the
output o it got back, with coefficients set by the schedule: read as noise, x0̂ = (x - sqrt(1 - ᾱ_i)·o) / sqrt(ᾱ_i)
and ε̂ = o; read as x0, x0̂ = o and ε̂ = (x - sqrt(ᾱ_i)·o) / sqrt(1 - ᾱ_i). The next state is then
sqrt(ᾱ_j)·x0̂ + sqrt(1 - ᾱ_j)·ε̂ (DDIM) or the posterior mean (sqrt(ᾱ_j)·(1 - ᾱ_i/ᾱ_j)·x0̂ + sqrt(ᾱ_i/ᾱ_j)·(1 - ᾱ_j)·x)
/ (1 - ᾱ_i) plus noise (DDPM). `step_readings` fits the last steps of a chain (the same first rows of every call,
`ForwardCall.head`) with both readings; at the least noisy steps the two differ far more than DDPM's noise, so the
reading that fits names how the sampler treats the output. `trained_reading` tells what the network was trained to
return from its training calls at the two ends of the schedule: an x0 predictor returns about its input where
ᾱ_t >= CLEAN_ABAR, a noise predictor where ᾱ_t <= 1 - CLEAN_ABAR. `last_step_fit` fits the samples the loop observed after the chain as
a·x0̂ + b·o from the last call: a last step returns x0̂ (a = 1, b = 0); one that reads ᾱ_{t-1} at t = 0 as ᾱ[-1]
(the schedule's end) puts the noise estimate back (b near 1)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

CLEAN_ABAR = 0.98
KEPT_END_ROWS = 512
KEPT_CALLS = 5  # the last calls of a chain: its last four steps


@dataclass
class ChainCall:
    """One sampling call: its time and the same first rows of its input and output, flattened, float64."""

    t: float
    x: torch.Tensor
    out: torch.Tensor


@dataclass
class SamplingChain:
    """The last KEPT_CALLS calls of one `with mon.sampling():` block of one network, whether the block ran more than
    one chain (t rising again) or called the network twice at one time (guidance, a second-order step), and the
    first rows of the samples observed after it."""

    model: str
    session: int
    step: int
    calls: deque = field(default_factory=lambda: deque(maxlen=KEPT_CALLS))
    chains: int = 1
    repeats: bool = False
    samples: torch.Tensor | None = None

    def add(self, t: float, head: torch.Tensor, output: torch.Tensor) -> None:
        x = head.reshape(head.shape[0], -1).double()
        out = output.reshape(output.shape[0], -1).double()
        if self.calls:
            if t == self.calls[-1].t:
                self.repeats = True
            elif t > self.calls[-1].t:
                self.chains += 1
        self.calls.append(ChainCall(t, x, out))

    def attach(self, samples: torch.Tensor) -> None:
        """The first rows of the samples observed after the chain (once; the same rows as the calls' heads)."""
        if self.samples is None and self.calls:
            rows = self.calls[-1].x.shape[0]
            flat = samples.reshape(samples.shape[0], -1)[:rows].double()
            if flat.shape == self.calls[-1].x.shape:
                self.samples = flat


class EndRows:
    """The most recent training rows (input and output, flattened) at one end of the schedule: ᾱ_t >= CLEAN_ABAR
    (`clean`) or ᾱ_t <= 1 - CLEAN_ABAR (not `clean`)."""

    def __init__(self, clean: bool) -> None:
        self.clean = clean
        self.x: deque = deque()
        self.out: deque = deque()
        self.count = 0

    def add(self, x: torch.Tensor, out: torch.Tensor, abar: torch.Tensor) -> None:
        keep = abar >= CLEAN_ABAR if self.clean else abar <= 1 - CLEAN_ABAR
        if not bool(keep.any()):
            return
        x = x[keep].reshape(int(keep.sum()), -1).double()
        out = out[keep].reshape(x.shape[0], -1).double()
        if out.shape != x.shape:
            return
        self.x.append(x)
        self.out.append(out)
        self.count += x.shape[0]
        while self.count - self.x[0].shape[0] >= KEPT_END_ROWS:
            self.count -= self.x.popleft().shape[0]
            self.out.popleft()

    def distance(self) -> float | None:
        """The output's RMS distance from the input, relative to the input's RMS; None without rows."""
        if not self.x:
            return None
        x, out = torch.cat(list(self.x)), torch.cat(list(self.out))
        return _rms(out - x) / (_rms(x) or 1.0)


def _rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def trained_reading(clean: EndRows, noisy: EndRows, near: float, gap: float) -> dict[str, Any] | None:
    """What the network was trained to return, from where it returns about its input: an x0 predictor at the clean
    end (distance below `near` there, at least `gap` further at the noisy end), a noise predictor at the noisy end
    (the mirror). None without rows at both ends; the reading None where neither holds."""
    at_clean, at_noisy = clean.distance(), noisy.distance()
    if at_clean is None or at_noisy is None:
        return None
    reading = None
    if at_clean < near and at_noisy - at_clean >= gap:
        reading = "x0"
    elif at_noisy < near and at_clean - at_noisy >= gap:
        reading = "eps"
    return {"reading": reading, "distance_clean": at_clean, "distance_noisy": at_noisy,
            "rows_clean": clean.count, "rows_noisy": noisy.count}


def predictions(x: torch.Tensor, out: torch.Tensor, abar_i: float, abar_j: float) -> dict[str, torch.Tensor]:
    """The next state of a DDIM and of a DDPM step from ᾱ_i to ᾱ_j (1 for the last step), with the output read as
    noise ("eps-") or as x0 ("x0-"); DDPM without its noise."""
    a_i, a_j = torch.tensor(abar_i, dtype=torch.float64), torch.tensor(abar_j, dtype=torch.float64)
    ratio = a_i / a_j
    result = {}
    for reading, x0, eps in (("eps", (x - (1 - a_i).sqrt() * out) / a_i.sqrt(), out),
                             ("x0", out, (x - a_i.sqrt() * out) / (1 - a_i).clamp_min(1e-12).sqrt())):
        result[f"{reading}-ddim"] = a_j.sqrt() * x0 + (1 - a_j).sqrt() * eps
        result[f"{reading}-ddpm"] = (a_j.sqrt() * (1 - ratio) * x0 + ratio.sqrt() * (1 - a_j) * x) / (1 - a_i)
    return result


def step_readings(chain: SamplingChain, abar_of: Any, fit: float, other: float) -> list[dict[str, Any]]:
    """Each step between the chain's kept calls: the times, the error of the best DDIM/DDPM form under each reading
    (RMS, relative to the next state's RMS) and the reading that fits (error <= `fit` and `other` times below the
    other reading's), or None."""
    calls = list(chain.calls)
    steps = []
    for before, after in zip(calls, calls[1:]):
        if after.x.shape != before.x.shape:
            continue
        abar_i = float(abar_of(torch.tensor([before.t])))
        abar_j = float(abar_of(torch.tensor([after.t])))
        if not abar_j > abar_i or abar_i >= 1.0:
            continue
        size = _rms(after.x) or 1.0
        errors = {name: _rms(after.x - value) / size
                  for name, value in predictions(before.x, before.out, abar_i, abar_j).items()}
        eps, x0 = min(errors["eps-ddim"], errors["eps-ddpm"]), min(errors["x0-ddim"], errors["x0-ddpm"])
        reading = ("eps" if eps <= fit and eps * other <= x0 else "x0" if x0 <= fit and x0 * other <= eps else None)
        steps.append({"t": before.t, "t_next": after.t, "abar": abar_i, "abar_next": abar_j,
                      "error_eps": eps, "error_x0": x0, "reading": reading})
    return steps


def chain_reading(steps: list[dict[str, Any]]) -> str | None:
    """The reading at least two steps agree on with none against, or None."""
    votes = [step["reading"] for step in steps if step["reading"] is not None]
    for reading in ("eps", "x0"):
        if votes.count(reading) >= 2 and len(set(votes)) == 1:
            return reading
    return None


def last_step_fit(chain: SamplingChain, abar_of: Any) -> dict[str, Any] | None:
    """`fit_last_step` of the samples observed after the chain on its last call; None without samples."""
    if chain.samples is None or not chain.calls:
        return None
    last = chain.calls[-1]
    return fit_last_step(last.x, last.out, chain.samples, float(abar_of(torch.tensor([last.t]))), last.t)


def fit_last_step(x: torch.Tensor, out: torch.Tensor, y: torch.Tensor, abar: float,
                  t: float) -> dict[str, Any] | None:
    """The sampler's result `y` fitted as a·x0̂ + b·o from its last call (state `x`, output `o` read as noise, at
    time `t` where ᾱ = `abar`), by least squares over the rows given, the fit clamped to [-1, 1] where `y` lies in
    it and reaches it: a, b and the relative residual. None at ᾱ = 1, where x0̂ is the state itself."""
    if abar >= 1.0:
        return None
    x, out, y = x.double(), out.double(), y.double()
    x0 = (x - (1 - abar) ** 0.5 * out) / abar ** 0.5
    design = torch.stack([x0.reshape(-1), out.reshape(-1)], 1)
    solution = torch.linalg.lstsq(design, y.reshape(-1, 1)).solution.reshape(-1)
    fitted = design @ solution
    if 1 - 1e-6 <= float(y.abs().max()) <= 1 + 1e-6:
        fitted = fitted.clamp(-1, 1)
    residual = _rms(y.reshape(-1) - fitted) / (_rms(y) or 1.0)
    return {"a": float(solution[0]), "b": float(solution[1]), "residual": residual, "t": t, "abar": abar,
            "last_change": _rms(y - x) / (_rms(x) or 1.0)}

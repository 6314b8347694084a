"""The properties a sampler must have, as plain functions of (sampler, example) that raise `PropertyFailure` (an
AssertionError) with a message naming the fault, the target, the step count and the number that failed.

An `Example` is one generated case: a Gaussian-mixture target, a seed for the start noise and (diffusion) a noise
schedule. The runner (`gendiag.testing.runner`) draws examples with hypothesis and shrinks a failure to its smallest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NoReturn

import torch

from gendiag.metrics.energy import energy_test
from gendiag.quantities.diffusion_sampler import fit_last_step
from gendiag.rules.thresholds import SAMPLER_FIT, SAMPLER_LAST_STEP
from gendiag.testing.calls import CleanField, FlowField, NoiseField, Record, Sampler
from gendiag.testing.targets import GaussianMixture, gaussian_ddim_map, gaussian_flow_map

ALPHA = 0.002           # false-alarm rate of each two-sample test (one per example)
PERMUTATIONS = 999      # p-values in steps of 1/1000, so ALPHA is reachable
SAMPLES = 300           # rows per two-sample test
FLOW_STEPS = 100        # steps of a flow sampler when its samples are compared with the target
ORDER_STEPS = (8, 16, 32, 64)
ORDER_SLACK = 0.3       # observed order may fall this far below the expected one
FROZEN = 1e-6           # relative change below which a state or an output counts as unchanged
SAME = 1e-5             # relative difference below which two outputs count as the same
INDEPENDENT = 1e-4      # ... and below which a kept row's sample counts as unchanged by the other rows (an adaptive
                        # solver integrating the batch as one system couples rows within its tolerance, rtol 1e-5)
ACCURATE = 1e-3         # relative error below which a sampler is accurate at every step count (an adaptive solver)
INVERSION_SLACK = 2.0   # a DDIM output's inversion error may be this many times textbook DDIM's
INVERSION_FLOOR = 1e-3  # ... or this, relative to the start noise, whichever is larger
STRIDE = 2              # a strided run takes T // STRIDE steps
TRAJECTORY_STEPS = 8    # flow steps of the runs whose calls are checked


class PropertyFailure(AssertionError):
    """A sampler property that does not hold; the message says which fault, where, and the number."""


@dataclass(frozen=True)
class Example:
    """One generated case: the target, the seed of the start noise, and for diffusion the schedule's betas."""

    target: GaussianMixture
    seed: int
    betas: torch.Tensor | None = None
    schedule: str = ""

    def describe(self) -> str:
        text = f"target {self.target.describe()}, seed {self.seed}"
        return text + (f", {self.schedule} schedule T={self.betas.shape[0]}" if self.betas is not None else "")

    def noise(self, n: int, salt: int = 0) -> torch.Tensor:
        """Start noise N(0, I) of shape (n, D), float32, from the example's seed."""
        gen = torch.Generator().manual_seed(self.seed * 1009 + salt)
        return torch.randn(n, self.target.dim, generator=gen)

    def generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 7919 + salt)

    @property
    def steps(self) -> int:
        return 0 if self.betas is None else self.betas.shape[0]


def fail(sampler: Sampler, what: str, example: Example, detail: str) -> NoReturn:
    raise PropertyFailure(f"{sampler.label}: {what} ({detail}; {example.describe()})")


def _rms(x: torch.Tensor) -> float:
    return float(x.double().pow(2).mean().sqrt())


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return _rms(a - b) / (_rms(b) or 1.0)


def _two_sample(a: torch.Tensor, b: torch.Tensor, seed: int) -> tuple[float, float]:
    return energy_test(a, b, PERMUTATIONS, generator=torch.Generator().manual_seed(seed))


# -- running the sampler --------------------------------------------------------------------------------------


def _flow(sampler: Sampler, example: Example, steps: int, x0: torch.Tensor) -> tuple[torch.Tensor, Record]:
    field = FlowField(example.target, sampler.label)
    return sampler.flow(field, x0, steps), field.record


def _diffusion(sampler: Sampler, example: Example, steps: int, x_T: torch.Tensor,
               generator: torch.Generator | None,
               field_type: type[NoiseField] = NoiseField) -> tuple[torch.Tensor, Record, NoiseField]:
    field = field_type(example.target, example.betas, sampler.time_scale, sampler.label)
    return sampler.diffusion(field, x_T, example.betas, steps, generator), field.record, field


def _run(sampler: Sampler, example: Example, x: torch.Tensor, steps: int | None = None,
         salt: int = 0) -> tuple[torch.Tensor, Record]:
    """One run of any kind (flow: TRAJECTORY_STEPS steps; diffusion: the full chain), its output and its calls."""
    if sampler.kind == "flow":
        return _flow(sampler, example, steps or TRAJECTORY_STEPS, x)
    out, record, _ = _diffusion(sampler, example, steps or example.steps, x, example.generator(salt))
    return out, record


# -- every kind ---------------------------------------------------------------------------------------------


def follows_target(sampler: Sampler, example: Example) -> None:
    """With the exact field or noise prediction, the samples follow the target (energy two-sample test at ALPHA)."""
    steps = FLOW_STEPS if sampler.kind == "flow" else example.steps
    out, record = _run(sampler, example, example.noise(SAMPLES), steps)
    reference = example.target.sample(SAMPLES, example.generator(1))
    if not bool(torch.isfinite(out).all()):
        cause = "" if sampler.kind == "flow" else _diffusion_cause(sampler, example, out, record, reference)
        fail(sampler, f"samples-unlike-data: the samples hold NaN or inf{cause}", example, f"{steps} steps")
    energy, p = _two_sample(out, reference, example.seed)
    if p < ALPHA:
        spread = _rms(out - out.mean(0)) / (_rms(reference - reference.mean(0)) or 1.0)
        hint = ("; they are wider than the target: noise is left in them (the chain must end at ᾱ = 1 with the "
                "noise predicted at the right t; an off-by-one in ᾱ indexing, such as ᾱ[t − 1] at t = 0 wrapping "
                "to ᾱ[T − 1], leaves it)"
                if sampler.kind != "flow" and spread > 1.5 else "")
        cause = "" if sampler.kind == "flow" else _diffusion_cause(sampler, example, out, record, reference)
        fail(sampler, f"samples-unlike-data: with the exact {_field_name(sampler)} the samples do not follow the "
             f"target{hint}{cause}", example, f"{steps} steps, energy distance {energy:.3g}, p = {p:.3g} < {ALPHA} "
             f"(false-alarm rate {ALPHA} per example), spread ×{spread:.2f} the target's")


def _diffusion_cause(sampler: Sampler, example: Example, out: torch.Tensor, record: Record,
                     reference: torch.Tensor) -> str:
    """Why a diffusion sampler's samples miss the target, where its own runs tell: it follows the target when handed
    the exact x0 prediction in place of the noise (`sampler-parameterization-mismatch`), or its last step does not
    return the x0 estimate (`sampler-schedule-misindexed`). Empty where neither holds."""
    generator = example.generator(0) if sampler.kind == "ddpm" else None
    clean, _, _ = _diffusion(sampler, example, example.steps, example.noise(SAMPLES), generator, CleanField)
    if bool(torch.isfinite(clean).all()) and _two_sample(clean, reference, example.seed)[1] >= ALPHA:
        return ("; sampler-parameterization-mismatch: handed the exact x0 prediction in place of the noise it "
                "follows the target, so it reads eps_fn's output as x0")
    if record.states:
        field = NoiseField(example.target, example.betas, sampler.time_scale, sampler.label)
        x, times = record.states[-1], record.times[-1]
        last = fit_last_step(x, field(x.float(), times).double(), out, float(field.alpha_bar(times)[0]),
                             float(times[0]))
        if last is not None and last["residual"] <= SAMPLER_FIT and (abs(last["a"] - 1) > SAMPLER_LAST_STEP
                                                                    or abs(last["b"]) > SAMPLER_LAST_STEP):
            return (f"; sampler-schedule-misindexed: its last step, from t = {last['t']:.4g}, returns "
                    f"{last['a']:.3g}·x0̂ {last['b']:+.3g}·ε̂ instead of the x0 estimate x0̂ (ᾱ_prev must be 1 there)")
    return ""


def state_moves(sampler: Sampler, example: Example) -> None:
    """The state passed to the field changes between calls at different times, and the output differs from the
    start."""
    x = example.noise(64)
    out, record = _run(sampler, example, x)
    steps = TRAJECTORY_STEPS if sampler.kind == "flow" else example.steps
    if not record.states:
        fail(sampler, f"sampler-state-frozen: the sampler never called the {_field_name(sampler)}", example,
             f"{steps} steps, 0 calls")
    size = _rms(record.states[0]) or 1.0
    times = record.first_times()
    for call in range(1, len(record.states)):
        change = _rms(record.states[call] - record.states[call - 1]) / size
        if change < FROZEN and times[call] != times[call - 1]:  # a second call at one (x, t) is a re-evaluation
            fail(sampler, "sampler-state-frozen: the state passed to the field did not move between calls "
                 f"{call} and {call + 1} (the step's result never reaches the state)", example,
                 f"{steps} steps, {len(record.states)} calls, relative change {change:.2g} < {FROZEN}")
    moved = _relative(out, x.double())
    if moved < FROZEN:
        fail(sampler, "sampler-state-frozen: the sampler returned its start unchanged", example,
             f"{steps} steps, relative change {moved:.2g} < {FROZEN}")


def rows_independent(sampler: Sampler, example: Example) -> None:
    """A row's sample does not depend on the other rows of the batch (checked only where the same batch gives the
    same samples; `reproducible` names a sampler that does not)."""
    x = example.noise(32)
    others = x.clone()
    others[16:] = 3 * example.noise(16, salt=5)
    first, _ = _run(sampler, example, x)
    if _relative(_run(sampler, example, x)[0], first) > SAME:
        return
    second, _ = _run(sampler, example, others)
    change = _relative(second[:16], first[:16])
    if change > INDEPENDENT:
        fail(sampler, "rows are not independent: changing the other rows of the batch changed the samples of rows "
             "that were kept", example, f"relative change {change:.3g} > {INDEPENDENT}")


def reproducible(sampler: Sampler, example: Example) -> None:
    """The same start (and for DDPM the same generator seed) gives the same samples."""
    x = example.noise(32)
    first, _ = _run(sampler, example, x)
    second, _ = _run(sampler, example, x)
    change = _relative(second, first)
    if change > SAME:
        source = ("it draws from torch's global RNG or its own, not the generator it is given"
                  if sampler.kind == "ddpm" else "it draws randomness of its own (a deterministic sampler must not)")
        fail(sampler, f"not reproducible: the same start{' and generator seed' if sampler.kind == 'ddpm' else ''} "
             f"gave different samples: {source}", example, f"relative difference {change:.3g} > {SAME}")


def _field_name(sampler: Sampler) -> str:
    return "velocity field" if sampler.kind == "flow" else "noise prediction"


# -- flow -----------------------------------------------------------------------------------------------------


def flow_time(sampler: Sampler, example: Example) -> None:
    """t runs from 0 (the source) to 1 (the data) over the whole range. Single calls back in time are allowed: an
    adaptive solver evaluates ahead and goes back when it rejects a step."""
    steps = TRAJECTORY_STEPS
    _, record = _flow(sampler, example, steps, example.noise(16))
    if not record.times:
        return  # state_moves names a sampler that never calls the field
    times = record.first_times()
    low, high, h = min(times), max(times), 1 / steps
    shown = f"{steps} steps, t from {times[0]:.4g} to {times[-1]:.4g}"
    if low < -1e-6 or high > 1 + 1e-6:
        fail(sampler, "t on another scale: velocity_fn got times outside [0, 1], the path's scale (t = 0 at the "
             "source, 1 at the data)", example, f"{shown}, range [{low:.4g}, {high:.4g}]")
    if times[-1] < times[0]:
        fail(sampler, "integrates from data to source: t decreases, but the path has the source at t = 0 and the "
             "data at t = 1", example, shown)
    if times[0] > 1e-3:
        fail(sampler, "does not start where the source is: the first call is not at t = 0", example, shown)
    if high < 1 - h - 1e-3:
        fail(sampler, "does not run the whole time range: the last call is short of t = 1 − 1/steps", example,
             f"{shown}, expected the last call at t >= {1 - h:.4g}")


def error_order(sampler: Sampler, example: Example, order: float = 1.0) -> None:
    """On a one-component target, whose flow map is closed form (x1 = μ + s·x0), the error shrinks with the step
    count at least at `order` (Euler 1, Heun 2), less ORDER_SLACK: the observed order is the slope between the two
    largest step counts, where the error is asymptotic. A sampler already within ACCURATE at every step count (an
    adaptive solver, which ignores the step count) passes."""
    x0 = example.noise(64).double()
    exact = gaussian_flow_map(example.target, x0)
    size = _rms(exact - example.target.means[0]) or 1.0
    errors = [_rms(_flow(sampler, example, steps, x0)[0] - exact) / size for steps in ORDER_STEPS]
    if max(errors) < ACCURATE:
        return  # accurate at every step count: nothing left to shrink
    observed = math.log(max(errors[-2], 1e-300) / max(errors[-1], 1e-300)) / math.log(ORDER_STEPS[-1] / ORDER_STEPS[-2])
    if observed < order - ORDER_SLACK:
        shown = ", ".join(f"{e:.3g}" for e in errors)
        fail(sampler, f"the error does not shrink at order {order:g} with more steps", example,
             f"observed order {observed:.2f} < {order - ORDER_SLACK:.2f}; relative errors {shown} at "
             f"{', '.join(map(str, ORDER_STEPS))} steps against the closed-form flow map")


# -- diffusion ----------------------------------------------------------------------------------------------


def diffusion_time(sampler: Sampler, example: Example) -> None:
    """The noise prediction gets t on the training scale, at integer steps from T−1 (where x_T is) down to 0."""
    T = example.steps
    _, record, field = _diffusion(sampler, example, T, example.noise(16), example.generator())
    if not record.times:
        return
    raw = record.first_times()
    steps = [float(field.step_of(torch.tensor(t))) for t in raw]
    scale = field.scale
    top = (T - 1) * scale / T
    shown = f"T = {T} steps, t from {raw[0]:.4g} to {raw[-1]:.4g}"
    off_grid = [s for s in steps if abs(s - round(s)) > 1e-3 or s < -1e-3 or s > T - 1 + 1e-3]
    if off_grid:
        if all(abs(s - round(s)) <= 1e-3 for s in steps) and min(steps) >= 1 and max(steps) <= T:
            fail(sampler, f"off by one: t runs over steps {min(steps):.0f} … {max(steps):.0f}, the noise "
                 f"prediction was trained on 0 … {T - 1}", example, shown)
        trained = (f"integer steps t = 0 … {T - 1}" if sampler.time_scale is None else
                   f"t = step·{scale:g}/{T} for steps 0 … {T - 1}, i.e. t from 0 to {top:.4g}")
        fail(sampler, f"t on another scale: the noise prediction was trained on {trained} (time scale "
             f"{'T, the default' if sampler.time_scale is None else f'{scale:g}'}; --time-scale S declares "
             "t = step·S/T)", example,
             f"{shown}, {len(off_grid)} of {len(steps)} calls off that grid")
    if steps[-1] > steps[0]:
        fail(sampler, "integrates from data to noise: t increases, but sampling runs from t = T−1 (noise) to 0 "
             "(data)", example, shown)
    rising = [k for k in range(1, len(steps)) if steps[k] > steps[k - 1] + 1e-6]
    if rising:
        fail(sampler, "time goes backwards between calls", example, f"{shown}; call {rising[0] + 1}")
    if round(steps[0]) != T - 1:
        fail(sampler, f"does not start where the noise is: the first step is {steps[0]:.0f}, not T−1 = {T - 1}",
             example, shown)
    if round(steps[-1]) != 0:
        fail(sampler, f"stops short of the data: the last step is {steps[-1]:.0f}, not 0", example, shown)


def adds_noise(sampler: Sampler, example: Example) -> None:
    """DDPM: two generators give different samples from one x_T, and the states differ after the first step (noise
    added at every step but the last)."""
    x = example.noise(32)
    first, calls_a = _run(sampler, example, x, salt=0)
    second, calls_b = _run(sampler, example, x, salt=1)
    T = example.steps
    difference = _relative(second, first)
    if difference < SAME:
        fail(sampler, "never adds noise: two different generators gave the same samples from one x_T (ancestral "
             "sampling adds σ_t·z after every step but the last)", example,
             f"T = {T} steps, relative difference {difference:.2g} < {SAME}")
    for call in range(1, min(len(calls_a.states), len(calls_b.states))):
        if _relative(calls_b.states[call], calls_a.states[call]) < SAME:
            fail(sampler, f"does not add noise where the update needs it: the state at call {call + 1} is the same "
                 "with two different generators (noise is needed after every step but the last)", example,
                 f"T = {T} steps, t = {calls_a.first_times()[call]:.4g}")


def strided_matches(sampler: Sampler, example: Example) -> None:
    """T // STRIDE steps visit integer steps of the schedule and give the full chain's distribution (a strided
    sampler recomputes β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}} at the steps τ it visits)."""
    T = example.steps
    steps = max(2, T // STRIDE)
    x = example.noise(SAMPLES)
    strided, record, field = _diffusion(sampler, example, steps, x, example.generator(2))
    visited = {round(float(field.step_of(t[:1]))) for t in record.times}
    if not steps / 2 <= len(visited) <= 2 * steps:
        fail(sampler, f"strided sampling ignores steps: it visited {len(visited)} distinct steps for steps={steps}",
             example, f"T = {T}")
    full, _, _ = _diffusion(sampler, example, T, example.noise(SAMPLES, salt=3), example.generator(3))
    energy, p = _two_sample(strided, full, example.seed)
    if p < ALPHA:
        why = ("a strided sampler must recompute β from ᾱ at the steps it visits, not reuse the per-step betas"
               if sampler.kind == "ddpm" else "a strided DDIM step goes from ᾱ at one visited step to ᾱ at the next")
        fail(sampler, f"strided sampling does not match the full sampler in distribution ({why})", example,
             f"{steps} of T = {T} steps, energy distance {energy:.3g}, p = {p:.3g} < {ALPHA} (false-alarm rate "
             f"{ALPHA} per example)")


def ddim_inverts(sampler: Sampler, example: Example) -> None:
    """DDIM (η = 0) on a one-component target maps noise to data and back: the exact inverse of the probability-
    flow ODE, applied to the output, returns the start noise within INVERSION_SLACK times the error of textbook DDIM
    on the same schedule (its discretisation error; at least INVERSION_FLOOR)."""
    T = example.steps
    x_T = example.noise(64)
    out, _, field = _diffusion(sampler, example, T, x_T, None)
    abar = field.log_abar.exp()
    error = _inversion_error(example.target, out, x_T, float(abar[-1]))
    tolerance = max(INVERSION_SLACK * _inversion_error(example.target, _textbook_ddim(field, x_T, abar), x_T,
                                                       float(abar[-1])), INVERSION_FLOOR)
    if not error <= tolerance:
        fail(sampler, "DDIM does not map noise to data and back: the exact inverse of its output misses the start "
             "noise (η = 0 DDIM follows the probability-flow ODE; an ᾱ indexed off by one or noise added breaks it)",
             example, f"T = {T} steps, relative error {error:.3g} > {tolerance:.3g} ({INVERSION_SLACK:g}× textbook "
             "DDIM's)")


def _inversion_error(target: GaussianMixture, out: torch.Tensor, x_T: torch.Tensor, abar_T: float) -> float:
    """RMS distance from x_T of the exact probability-flow inverse of `out`, relative to x_T's size."""
    mean = target.means[0]
    _, gain = gaussian_ddim_map(target, x_T, abar_T)
    back = math.sqrt(abar_T) * (mean + (out.double() - mean) / gain)
    return _relative(back, x_T.double())


def _textbook_ddim(field: NoiseField, x_T: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """Song et al.'s DDIM, η = 0, over every step T−1 … 0, in float32 as a user's sampler runs."""
    x = x_T.clone()
    T = abar.shape[0]
    for step in reversed(range(T)):
        eps = field(x, torch.full((x.shape[0],), step * field.scale / T)).double()
        x0 = (x.double() - (1 - abar[step]).sqrt() * eps) / abar[step].sqrt()
        prev = abar[step - 1] if step > 0 else abar.new_tensor(1.0)
        x = (prev.sqrt() * x0 + (1 - prev).sqrt() * eps).to(x_T.dtype)
    return x.double()


Property = Callable[[Sampler, Example], None]

# name, function, whether it needs a one-component target, for each kind
PROPERTIES: dict[str, list[tuple[str, Property, bool]]] = {
    "flow": [("state moves at every call", state_moves, False),
             ("time runs from 0 to 1", flow_time, False),
             ("samples follow the target", follows_target, False),
             ("error shrinks at the sampler's order", error_order, True),
             ("rows are independent", rows_independent, False),
             ("same start, same samples", reproducible, False)],
    "ddpm": [("state moves at every call", state_moves, False),
             ("time runs from T-1 to 0 on the training scale", diffusion_time, False),
             ("samples follow the target", follows_target, False),
             ("noise is added at every step but the last", adds_noise, False),
             ("strided sampling matches the full chain", strided_matches, False),
             ("rows are independent", rows_independent, False),
             ("same generator, same samples", reproducible, False)],
    "ddim": [("state moves at every call", state_moves, False),
             ("time runs from T-1 to 0 on the training scale", diffusion_time, False),
             ("samples follow the target", follows_target, False),
             ("maps noise to data and back (inversion)", ddim_inverts, True),
             ("strided sampling matches the full chain", strided_matches, False),
             ("rows are independent", rows_independent, False),
             ("same start, same samples", reproducible, False)],
}

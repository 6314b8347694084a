"""Samplers written as a user writes them, each with one fault, fail the property that names it, with the words of
gendiag's findings; the correct twin of each passes. Each check runs only the property concerned, on a few
derandomized examples, so the file stays fast."""

from __future__ import annotations

import pytest
import torch

from gendiag.testing import assert_flow_sampler, check_sampler
from tests.user_samplers import euler, frozen

EXAMPLES = 3


def verdict(sampler, kind: str, name: str, **options):
    found = check_sampler(sampler, kind, only=(name,), examples=EXAMPLES, **options)
    assert [v.name for v in found] == [name]
    return found[0]


def fails(sampler, kind: str, name: str, *words: str, **options) -> str:
    result = verdict(sampler, kind, name, **options)
    assert not result.passed, f"{name} held for a faulty sampler"
    for word in words:
        assert word in result.message, f"{word!r} not in: {result.message}"
    return result.message


# -- flow samplers: sampler(velocity_fn, x0, steps) -> x1 ------------------------------------------------------


def euler_from_one_to_zero(velocity_fn, x0, steps):
    x = x0.clone()
    times = torch.linspace(1.0, 0.0, steps + 1)
    for i in range(steps):
        x = x + (times[i] - times[i + 1]) * velocity_fn(x, times[i])
    return x


def euler_with_step_index(velocity_fn, x0, steps):
    x = x0.clone()
    for i in range(steps):
        x = x + velocity_fn(x, torch.full((x.shape[0], 1), float(i))) / steps
    return x


def euler_one_step_short(velocity_fn, x0, steps):
    x, dt = x0.clone(), 1.0 / steps
    for i in range(steps - 2):
        x = x + dt * velocity_fn(x, torch.tensor(i * dt))
    return x


def euler_against_the_field(velocity_fn, x0, steps):
    x, dt = x0.clone(), 1.0 / steps
    for i in range(steps):
        x = x - dt * velocity_fn(x, i * dt)
    return x


def euler_then_standardise(velocity_fn, x0, steps):
    x = euler(velocity_fn, x0, steps)
    return (x - x.mean(0)) / x.std(0)


def euler_with_jitter(velocity_fn, x0, steps):
    return euler(velocity_fn, x0, steps) + 1e-3 * torch.randn_like(x0)


def test_a_correct_euler_passes_every_flow_property() -> None:
    assert_flow_sampler(euler, examples=EXAMPLES, dims=2)


def test_a_frozen_sampler_is_named_sampler_state_frozen_on_the_smallest_target() -> None:
    message = fails(frozen, "flow", "state moves at every call", "sampler-state-frozen",
                    "did not move between calls 1 and 2", "8 steps")
    assert "1-D mixture 1.00·N((0), " in message  # shrunk to one component in one dimension


def test_a_sampler_from_one_to_zero_integrates_from_data_to_source() -> None:
    fails(euler_from_one_to_zero, "flow", "time runs from 0 to 1", "integrates from data to source",
          "t from 1 to 0.125")


def test_a_sampler_passing_the_step_index_feeds_t_on_another_scale() -> None:
    fails(euler_with_step_index, "flow", "time runs from 0 to 1", "t on another scale", "range [0, 7]")


def test_a_sampler_that_stops_early_does_not_run_the_whole_range() -> None:
    fails(euler_one_step_short, "flow", "time runs from 0 to 1", "does not run the whole time range")


def test_a_sampler_against_the_field_gives_samples_unlike_the_target() -> None:
    fails(euler_against_the_field, "flow", "samples follow the target", "samples-unlike-data", "p = ",
          "false-alarm rate 0.002")


def test_euler_declared_second_order_fails_the_order_property() -> None:
    assert verdict(euler, "flow", "error shrinks at the sampler's order").passed
    message = fails(euler, "flow", "error shrinks at the sampler's order", "does not shrink at order 2",
                    "8, 16, 32, 64 steps", order=2.0)
    observed = float(message.split("observed order ")[1].split(" ")[0])
    assert 0.8 < observed < 1.2


def test_standardising_the_batch_makes_rows_depend_on_each_other() -> None:
    fails(euler_then_standardise, "flow", "rows are independent", "rows are not independent")


def test_noise_from_torchs_global_rng_is_not_reproducible() -> None:
    fails(euler_with_jitter, "flow", "same start, same samples", "not reproducible")
    assert verdict(euler_with_jitter, "flow", "rows are independent").passed  # named once, by reproducibility


# -- DDPM samplers: sampler(eps_fn, x_T, betas, steps, generator) -> x_0 ---------------------------------------


def ddpm(eps_fn, x, betas, steps, generator, t_of=float, abar_index=lambda t: t - 1):
    """A user's strided DDPM: visits every (T // steps)-th step and recomputes β between visited steps."""
    T = len(betas)
    abar = torch.cumprod(1 - betas, dim=0)
    visited = list(range(0, T, T // steps))[::-1]
    for i, t in enumerate(visited):
        t_prev = visited[i + 1] if i + 1 < len(visited) else -1
        a_prev = abar[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        beta = 1 - abar[t] / a_prev
        eps = eps_fn(x, torch.full((x.shape[0],), t_of(t)))
        x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        mean = a_prev.sqrt() * beta / (1 - abar[t]) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - abar[t]) * x
        x = mean.float()
        if t_prev >= 0:
            x = x + (beta * (1 - a_prev) / (1 - abar[t])).sqrt().float() * torch.randn(x.shape, generator=generator)
    return x


def ddpm_reusing_betas(eps_fn, x, betas, steps, generator):
    T = len(betas)
    abar = torch.cumprod(1 - betas, dim=0)
    visited = list(range(0, T, T // steps))[::-1]
    for i, t in enumerate(visited):
        eps = eps_fn(x, torch.full((x.shape[0],), float(t)))
        x = ((x - betas[t] / (1 - abar[t]).sqrt() * eps) / (1 - betas[t]).sqrt()).float()
        if i + 1 < len(visited):
            x = x + betas[t].sqrt().float() * torch.randn(x.shape, generator=generator)
    return x


def ddpm_without_noise(eps_fn, x, betas, steps, generator):
    abar = torch.cumprod(1 - betas, dim=0)
    for t in reversed(range(len(betas))):
        eps = eps_fn(x, torch.full((x.shape[0],), float(t)))
        x = ((x - betas[t] / (1 - abar[t]).sqrt() * eps) / (1 - betas[t]).sqrt()).float()
    return x


def ddpm_over_t_in_one_to_T(eps_fn, x, betas, steps, generator):
    abar = torch.cumprod(1 - betas, dim=0)
    for t in range(len(betas), 0, -1):
        eps = eps_fn(x, torch.full((x.shape[0],), float(t)))
        x = ((x - betas[t - 1] / (1 - abar[t - 1]).sqrt() * eps) / (1 - betas[t - 1]).sqrt()).float()
        if t > 1:
            x = x + betas[t - 1].sqrt().float() * torch.randn(x.shape, generator=generator)
    return x


def ddpm_with_global_noise(eps_fn, x, betas, steps, generator):
    abar = torch.cumprod(1 - betas, dim=0)
    for t in reversed(range(len(betas))):
        eps = eps_fn(x, torch.full((x.shape[0],), float(t)))
        x = ((x - betas[t] / (1 - abar[t]).sqrt() * eps) / (1 - betas[t]).sqrt()).float()
        if t > 0:
            x = x + betas[t].sqrt().float() * torch.randn_like(x)
    return x


def ddpm_off_by_one(eps_fn, x, betas, steps, generator):
    """ᾱ_{t−1} taken as abar[t - 1], which at t = 0 wraps round to abar[T - 1]."""
    abar = torch.cumprod(1 - betas, dim=0)
    for t in reversed(range(len(betas))):
        a_t, a_prev = abar[t], abar[t - 1]
        eps = eps_fn(x, torch.full((x.shape[0],), float(t)))
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        mean = a_prev.sqrt() * betas[t] / (1 - a_t) * x0 + (1 - betas[t]).sqrt() * (1 - a_prev) / (1 - a_t) * x
        x = mean.float()
        if t > 0:
            x = x + (betas[t] * (1 - a_prev) / (1 - a_t)).sqrt().float() * torch.randn(x.shape, generator=generator)
    return x


@pytest.mark.parametrize("name", ["samples follow the target", "noise is added at every step but the last",
                                  "strided sampling matches the full chain", "time runs from T-1 to 0 on the "
                                  "training scale", "same generator, same samples"])
def test_a_correct_strided_ddpm_passes(name: str) -> None:
    assert verdict(ddpm, "ddpm", name, dims=2).passed


@pytest.mark.slow
def test_a_strided_ddpm_reusing_the_per_step_betas_fails() -> None:
    fails(ddpm_reusing_betas, "ddpm", "strided sampling matches the full chain", "does not match the full sampler",
          "not reuse the per-step betas", "of T = ")


def test_a_ddpm_sampler_without_noise_never_adds_noise() -> None:
    fails(ddpm_without_noise, "ddpm", "noise is added at every step but the last", "never adds noise")


def test_a_ddpm_passing_t_over_T_feeds_t_on_another_scale_unless_declared() -> None:
    over_T = lambda eps_fn, x, betas, steps, gen: ddpm(eps_fn, x, betas, steps, gen, t_of=lambda t: t / len(betas))
    fails(over_T, "ddpm", "time runs from T-1 to 0 on the training scale", "t on another scale",
          "integer steps t = 0 … ")
    assert verdict(over_T, "ddpm", "time runs from T-1 to 0 on the training scale", time_scale=1.0).passed
    assert verdict(over_T, "ddpm", "samples follow the target", time_scale=1.0).passed


def test_a_ddpm_over_steps_one_to_T_is_off_by_one() -> None:
    fails(ddpm_over_t_in_one_to_T, "ddpm", "time runs from T-1 to 0 on the training scale", "off by one")


def test_an_off_by_one_in_abar_leaves_noise_in_the_samples() -> None:
    fails(ddpm_off_by_one, "ddpm", "samples follow the target", "samples-unlike-data", "off-by-one in ᾱ indexing")


def test_a_ddpm_drawing_from_the_global_rng_is_not_reproducible() -> None:
    fails(ddpm_with_global_noise, "ddpm", "same generator, same samples", "torch's global RNG")


def test_a_frozen_ddpm_is_named_sampler_state_frozen() -> None:
    def frozen(eps_fn, x, betas, steps, generator):
        out = x
        for t in reversed(range(len(betas))):
            out = x - betas[t].float() * eps_fn(x, torch.full((x.shape[0],), float(t)))
        return out

    fails(frozen, "ddpm", "state moves at every call", "sampler-state-frozen")


# -- DDIM samplers: sampler(eps_fn, x_T, betas, steps) -> x_0 --------------------------------------------------


def ddim(eps_fn, x, betas, steps, prev_index=lambda t_next: t_next):
    T = len(betas)
    abar = torch.cumprod(1 - betas, dim=0)
    visited = list(range(0, T, T // steps))[::-1]
    for i, t in enumerate(visited):
        a_prev = abar[prev_index(visited[i + 1])] if i + 1 < len(visited) else torch.tensor(1.0, dtype=torch.float64)
        eps = eps_fn(x, torch.full((x.shape[0],), float(t)))
        x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        x = (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps).float()
    return x


def test_a_correct_ddim_inverts() -> None:
    assert verdict(ddim, "ddim", "maps noise to data and back (inversion)").passed
    assert verdict(ddim, "ddim", "strided sampling matches the full chain", dims=2).passed


def test_a_ddim_with_the_previous_abar_off_by_one_does_not_invert() -> None:
    off = lambda eps_fn, x, betas, steps: ddim(eps_fn, x, betas, steps, prev_index=lambda t_next: t_next - 1)
    fails(off, "ddim", "maps noise to data and back (inversion)", "does not map noise to data and back",
          "textbook DDIM")


def test_a_ddim_that_adds_noise_is_not_deterministic() -> None:
    noisy = lambda eps_fn, x, betas, steps: ddim(eps_fn, x, betas, steps) + 0.01 * torch.randn_like(x)
    fails(noisy, "ddim", "same start, same samples", "not reproducible")

"""The project's own samplers pass every property of their kind: the ODE solvers of reference_models.solvers (the
adaptive one too: accurate at every step count, and its batch-wide step control couples rows only within its
tolerance), the flattened recipe's Euler over time points, DDPM's ancestral chain (strided by recomputing betas, as
improved DDPM respaces a schedule) and DDIM, each called through the signature gendiag.testing documents."""

from __future__ import annotations

import torch

from gendiag.recipes.flattened.sampling import euler_time_points
from gendiag.testing import assert_ddim_sampler, assert_ddpm_sampler, assert_flow_sampler
from reference_models.ddpm import Schedule, ancestral_sample, ddim_sample
from reference_models.solvers import adaptive, euler, heun

EXAMPLES = 3


def test_euler_passes_every_flow_property() -> None:
    assert_flow_sampler(euler, order=1, examples=EXAMPLES)


def test_heun_passes_every_flow_property_at_order_two() -> None:
    assert_flow_sampler(heun, order=2, examples=EXAMPLES)


def test_the_adaptive_reference_solver_passes_though_it_ignores_the_step_count() -> None:
    assert_flow_sampler(lambda field, x0, steps: adaptive(field, x0), examples=EXAMPLES)


def test_the_flattened_recipes_euler_over_time_points_passes() -> None:
    assert_flow_sampler(lambda field, x0, steps: euler_time_points(field, x0, steps + 1), examples=EXAMPLES)


def respaced(betas: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `steps` visited steps (evenly spaced, T−1 … 0) and the betas recomputed for them from ᾱ."""
    visited = torch.linspace(betas.shape[0] - 1, 0, steps).round().long().flip(0).unique()
    abar = torch.cumprod(1 - betas, 0)[visited]
    return visited, 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])


def strided_ancestral(eps_fn, x_T, betas, steps, generator):
    visited, new_betas = respaced(betas, steps)
    return ancestral_sample(lambda x, t: eps_fn(x, visited[t.long()].to(x.dtype)), Schedule(new_betas), x_T,
                            generator=generator)


def test_ancestral_sampling_passes_every_ddpm_property() -> None:
    assert_ddpm_sampler(strided_ancestral, examples=EXAMPLES)


def test_ddim_passes_every_ddim_property() -> None:
    assert_ddim_sampler(lambda eps_fn, x_T, betas, steps: ddim_sample(eps_fn, Schedule(betas), x_T, steps),
                        examples=EXAMPLES)

"""Hypothesis strategies for sampler checks: Gaussian-mixture targets of varied dimension, number of components,
scales and weights, noise schedules, and whole examples. They shrink towards one component at the origin in one
dimension, so a failing property reports the smallest target that shows the fault."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from gendiag.testing.properties import Example
from gendiag.testing.targets import GaussianMixture
from reference_models.ddpm import cosine_betas, linear_betas

SCHEDULE_STEPS = (100, 50)
# one-component targets keep s < 0.6: near s = 1 the h² term of a second-order solver's error on N(μ, s²I) vanishes
# (at s = 1 Heun converges at order 3), and the slope measured between 32 and 64 steps would say neither 2 nor 3
SINGLE_SCALES = (0.25, 0.6)


def _dims(dims: int | tuple[int, int]) -> st.SearchStrategy[int]:
    return st.just(dims) if isinstance(dims, int) else st.integers(*dims)


@st.composite
def mixtures(draw: st.DrawFn, dims: int | tuple[int, int] = (1, 4), components: tuple[int, int] = (1, 4),
             scales: tuple[float, float] = (0.25, 0.9), spread: float = 3.0) -> GaussianMixture:
    """Σ_j π_j N(μ_j, s_j² I): `dims` a dimension or a (low, high) range, means in [−spread, spread], scales s_j in
    `scales`, weights from 0.2 to 1 before normalising. Scales stay below 1 so that no target, the smallest one
    included, is the source N(0, I) itself, on which a sampler that does nothing would pass."""
    dim = draw(_dims(dims))
    k = draw(st.integers(*components))
    coordinate = st.floats(-spread, spread, allow_nan=False, allow_infinity=False)
    means = draw(st.lists(st.lists(coordinate, min_size=dim, max_size=dim), min_size=k, max_size=k))
    sizes = draw(st.lists(st.floats(*scales), min_size=k, max_size=k))
    weights = draw(st.lists(st.floats(0.2, 1.0), min_size=k, max_size=k))
    return GaussianMixture.make(means, sizes, weights)


def gaussians(dims: int | tuple[int, int] = (1, 4), scales: tuple[float, float] = (0.25, 0.9)
              ) -> st.SearchStrategy[GaussianMixture]:
    """One-component targets N(μ, s²I), whose flow map and probability-flow ODE are closed form."""
    return mixtures(dims, components=(1, 1), scales=scales)


@st.composite
def schedules(draw: st.DrawFn, steps: tuple[int, ...] = SCHEDULE_STEPS) -> tuple[str, torch.Tensor]:
    """A (name, betas) noise schedule reaching noise: linear (Ho et al.'s 1e-4 … 0.02 rescaled by 1000/T) or cosine."""
    T = draw(st.sampled_from(steps))
    if draw(st.sampled_from(["linear", "cosine"])) == "linear":
        return "linear", linear_betas(T, 0.1 / T, 20 / T)
    return "cosine", cosine_betas(T)


@st.composite
def examples(draw: st.DrawFn, kind: str = "flow", single: bool = False,
             dims: int | tuple[int, int] = (1, 4)) -> Example:
    """An Example for a sampler of `kind`: a target (one component with a scale in SINGLE_SCALES when `single`), a
    seed, a schedule for diffusion."""
    target = draw(gaussians(dims, scales=SINGLE_SCALES) if single else mixtures(dims))
    seed = draw(st.integers(0, 2**16))
    if kind == "flow":
        return Example(target, seed)
    name, betas = draw(schedules())
    return Example(target, seed, betas, name)

"""Property-based checks of a sampler against Gaussian-mixture targets whose exact velocity field or noise
prediction is known in closed form, for the user's own test suite (and `gendiag check-sampler`).

    from gendiag.testing import assert_flow_sampler
    def test_my_sampler():
        assert_flow_sampler(my_sampler)

Each `assert_*` runs every property of its kind (see `PROPERTIES`) over generated targets, derandomized, and raises
an AssertionError naming each property that fails, with its smallest failing target. The hypothesis strategies for
targets are in `gendiag.testing.strategies`. Hypothesis is imported here and nowhere else in gendiag."""

from __future__ import annotations

from typing import Any, Callable

from gendiag.testing.calls import SIGNATURES, SamplerContractError
from gendiag.testing.properties import PROPERTIES, Example, PropertyFailure
from gendiag.testing.runner import EXAMPLES, Verdict, check_sampler, raise_on_failure
from gendiag.testing.targets import GaussianMixture


def assert_flow_sampler(sampler: Callable[..., Any], *, order: float = 1.0, dims: int | tuple[int, int] = (1, 4),
                        examples: int = EXAMPLES) -> None:
    """Every flow property for `sampler(velocity_fn, x0, steps) -> x1` (t = 0 at the source, 1 at the data);
    `order`: its expected order of convergence (Euler 1, Heun 2)."""
    raise_on_failure(check_sampler(sampler, "flow", order=order, dims=dims, examples=examples))


def assert_ddpm_sampler(sampler: Callable[..., Any], *, time_scale: float | None = None,
                        dims: int | tuple[int, int] = (1, 4), examples: int = EXAMPLES) -> None:
    """Every DDPM property for `sampler(eps_fn, x_T, betas, steps, generator) -> x_0`: `betas` the (T,) schedule,
    `steps` <= T the steps to take (fewer: strided), noise drawn from `generator`; eps_fn(x, t) with t = step for
    step T−1 … 0, or step·time_scale/T when `time_scale` is given (1 for t/T)."""
    raise_on_failure(check_sampler(sampler, "ddpm", time_scale=time_scale, dims=dims, examples=examples))


def assert_ddim_sampler(sampler: Callable[..., Any], *, time_scale: float | None = None,
                        dims: int | tuple[int, int] = (1, 4), examples: int = EXAMPLES) -> None:
    """Every DDIM (η = 0) property for `sampler(eps_fn, x_T, betas, steps) -> x_0`, t as for assert_ddpm_sampler."""
    raise_on_failure(check_sampler(sampler, "ddim", time_scale=time_scale, dims=dims, examples=examples))


__all__ = ["EXAMPLES", "PROPERTIES", "SIGNATURES", "Example", "GaussianMixture", "PropertyFailure",
           "SamplerContractError", "Verdict", "assert_ddim_sampler", "assert_ddpm_sampler", "assert_flow_sampler",
           "check_sampler"]

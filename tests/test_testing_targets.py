"""The Gaussian-mixture targets of gendiag.testing: their exact velocity agrees with the project's empirical exact
field in the limit of narrow components, their closed-form flow map with an adaptive ODE solve of that velocity,
their noise prediction with the score of the noised mixture, and the strategies shrink to the smallest target."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gendiag.flow.exact_field import exact_velocity
from gendiag.testing.strategies import examples, gaussians, mixtures
from gendiag.testing.targets import GaussianMixture, gaussian_ddim_map, gaussian_flow_map
from reference_models.solvers import adaptive

PROFILE = settings(max_examples=15, derandomize=True, deadline=None, database=None)


@PROFILE
@given(mixtures(dims=(1, 3), scales=(0.25, 1.5)), st.floats(0.0, 0.9))
def test_narrow_components_give_the_empirical_exact_field(target: GaussianMixture, t: float) -> None:
    narrow = GaussianMixture.make(target.means.tolist(), [1e-4] * target.components)
    x = torch.randn(64, target.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = narrow.velocity(x, torch.full((64,), t, dtype=torch.float64))
    theirs = exact_velocity(x, t, narrow.means, dtype=torch.float64)
    assert torch.allclose(ours, theirs, atol=1e-5 * (1 + theirs.abs().max()))


@PROFILE
@given(gaussians(dims=(1, 3)))
def test_the_flow_map_of_one_gaussian_is_the_ode_solution(target: GaussianMixture) -> None:
    x0 = torch.randn(16, target.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    solved = adaptive(target.velocity, x0, rtol=1e-9, atol=1e-10)
    assert torch.allclose(solved, gaussian_flow_map(target, x0), atol=1e-6)


def test_the_noise_prediction_is_minus_the_scaled_score() -> None:
    target = GaussianMixture.make([[0.0, 1.0], [2.0, -1.0]], [0.3, 0.8], [0.25, 0.75])
    abar = 0.4
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64).requires_grad_(True)
    means = math.sqrt(abar) * target.means
    variances = abar * target.scales ** 2 + 1 - abar
    log_p = torch.logsumexp(target.weights.log() - (x[:, None] - means).pow(2).sum(2) / (2 * variances)
                            - variances.log(), dim=1)  # dimension 2: −D/2·log v = −log v
    score, = torch.autograd.grad(log_p.sum(), x)
    eps = target.eps(x.detach(), torch.full((32,), abar, dtype=torch.float64))
    assert torch.allclose(eps, -math.sqrt(1 - abar) * score, atol=1e-10)


def test_ddim_converges_to_the_ddim_map_of_one_gaussian() -> None:
    target = GaussianMixture.make([[1.0, -0.5]], [0.6])
    start = torch.randn(8, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    errors = []
    for steps in (1000, 2000):
        abar = torch.cumprod(1 - torch.linspace(1e-4, 40 / steps, steps, dtype=torch.float64), 0)
        x = start.clone()
        for step in reversed(range(steps)):
            eps = target.eps(x, abar[step])
            x0 = (x - (1 - abar[step]).sqrt() * eps) / abar[step].sqrt()
            prev = abar[step - 1] if step > 0 else abar.new_tensor(1.0)
            x = prev.sqrt() * x0 + (1 - prev).sqrt() * eps
        errors.append(float((x - gaussian_ddim_map(target, start, float(abar[-1]))[0]).abs().max()))
    assert errors[1] < 2.5e-3 and 1.7 < errors[0] / errors[1] < 2.3  # DDIM's first-order error, shrinking to 0


def test_examples_shrink_to_one_component_in_one_dimension() -> None:
    found = []

    @settings(max_examples=30, derandomize=True, database=None)
    @given(examples("ddpm"))
    def smallest(example) -> None:
        found.append(example)
        assert example.target.components < 2

    try:
        smallest()
    except AssertionError:
        pass
    last = found[-1]
    assert last.target.components == 2 and last.target.dim == 1
    assert last.steps in (50, 100) and last.betas.dtype == torch.float64

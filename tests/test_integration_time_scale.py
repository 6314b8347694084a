"""The time-scale check behind the diffusers integration's planted fault, on plain tensors (no library needed):
training and sampling times on one scale agree, whatever the sampler's step count; a factor of T apart is named,
with the side that passes the schedule's integer steps."""

from __future__ import annotations

import torch

from gendiag.quantities.time_scale import time_scale_gap


def test_times_on_one_scale_agree() -> None:
    flow_train, flow_sampling = torch.rand(4096), torch.arange(40) / 40
    assert time_scale_gap(flow_train, flow_sampling) is None
    ddpm_train, ddim_sampling = torch.randint(0, 1000, (4096,)), torch.arange(980, -1, -20)
    assert time_scale_gap(ddpm_train, ddim_sampling, schedule=torch.ones(1000)) is None


def test_fraction_in_training_and_integer_steps_in_sampling_are_named() -> None:
    gap = time_scale_gap(torch.randint(0, 1000, (4096,)) / 1000, torch.arange(980, -1, -20), torch.ones(1000))
    assert gap is not None and gap.sampling_larger and 900 < gap.factor < 1100
    assert "sampling passes the integer step (0 .. 999) and training another scale" in gap.describe()
    reverse = time_scale_gap(torch.randint(0, 1000, (4096,)), torch.linspace(1, 0, 50), torch.ones(1000))
    assert reverse is not None and not reverse.sampling_larger
    assert "training passes the integer step" in reverse.describe()


def test_a_side_without_positive_times_is_not_judged() -> None:
    assert time_scale_gap(torch.rand(100), torch.zeros(10)) is None
    assert time_scale_gap(torch.rand(100), torch.empty(0)) is None

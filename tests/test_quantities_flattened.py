"""The flattened case's own measurements (gendiag.quantities.flattened) against hand-computed and brute-force
twins."""

from __future__ import annotations

import math

import pytest
import torch

from gendiag.quantities.flattened import (binary_iou, cosine, displacement_ratio, loss_range, loss_share_from, peak,
                                          relative_weight_change, unreachable_share)


def test_similarities_on_hand_images() -> None:
    a = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert cosine(a[:1], b).item() == pytest.approx(0.5)
    assert binary_iou(a, b, 0.5).tolist() == pytest.approx([1 / 3, 0.0])
    assert binary_iou(torch.zeros(1, 4), torch.zeros(1, 4), 0.5).item() == 1.0


def test_displacement_is_the_travelled_share_of_the_straight_path() -> None:
    starts = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    target = torch.tensor([[3.0, 4.0]])
    samples = torch.tensor([[0.0, 1.0], [3.0, 4.0]])  # 1 of 5; a start that is the target: 0 over a tiny gap
    assert displacement_ratio(samples[:1], starts[:1], target) == pytest.approx(0.2)
    assert displacement_ratio(torch.tensor([[3.0, 4.0]]), starts[:1], target) == pytest.approx(1.0)
    assert displacement_ratio(samples, starts, target) == pytest.approx(0.1)


def test_relative_weight_change_on_hand_tensors_and_its_flat_twin() -> None:
    initial = [torch.tensor([3.0, 0.0]), torch.tensor([[0.0], [4.0]])]
    now = [torch.tensor([3.0, 1.0]), torch.tensor([[0.0], [4.0]])]
    assert relative_weight_change(now, initial) == pytest.approx(1 / 5)
    generator = torch.Generator().manual_seed(0)
    initial = [torch.randn(4, 3, generator=generator), torch.randn(5, generator=generator)]
    now = [p + 0.1 * torch.randn(p.shape, generator=generator) for p in initial]
    flat0, flat = torch.cat([p.flatten() for p in initial]), torch.cat([p.flatten() for p in now])
    assert relative_weight_change(now, initial) == pytest.approx(float((flat - flat0).norm() / flat0.norm()), rel=1e-5)


def test_loss_share_counts_the_draws_at_or_above_the_time() -> None:
    t = torch.tensor([0.1, 0.9, 0.99])
    loss = torch.tensor([1.0, 2.0, 7.0])
    assert loss_share_from(t, loss, 0.9) == pytest.approx(0.9)
    assert loss_share_from(t, loss, 0.995) == 0.0
    assert math.isnan(loss_share_from(torch.zeros(0), torch.zeros(0), 0.9))


def test_unreachable_share_on_a_hand_span_and_against_least_squares() -> None:
    weight = torch.tensor([[1.0], [0.0], [0.0]])  # one hidden unit along e1, the bias along e2
    bias = torch.tensor([0.0, 1.0, 0.0])
    assert unreachable_share(weight, bias, torch.tensor([[1.0, 1.0, 2.0]])) == pytest.approx(4 / 6)
    generator = torch.Generator().manual_seed(1)
    weight, bias = torch.randn(6, 2, generator=generator), torch.randn(6, generator=generator)
    needed = torch.randn(3, 6, generator=generator)
    span = torch.cat([weight, bias[:, None]], 1)
    fitted = span @ torch.linalg.lstsq(span, needed.T).solution
    outside = float((needed.T - fitted).pow(2).sum() / needed.pow(2).sum())
    assert unreachable_share(weight, bias, needed) == pytest.approx(outside, rel=1e-4)


def test_loss_range_and_peak_on_hand_lists() -> None:
    summary = loss_range([3.0, 1.0, 2.0, 10.0])
    assert (summary.first, summary.last, summary.median, summary.min, summary.max) == (3.0, 10.0, 2.5, 1.0, 10.0)
    assert math.isnan(loss_range([]).last)
    best = peak([0, 5, 15], [0.2, 0.4, 0.4], [0.9, 0.7, 0.8])
    assert (best.iteration, best.peak_cos_target, best.peak_cos_source) == (5, 0.4, 0.7)
    assert (best.last_cos_target, best.last_cos_source) == (0.4, 0.8)
    with pytest.raises(ValueError, match="one value each"):
        peak([0, 5], [0.1], [0.2, 0.3])

"""PixelCNN: the masks make it autoregressive, its likelihood is exact (sums to 1), sampling follows it."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from reference_models.pixelcnn import MaskedConv2d, PixelCNN, bernoulli_baseline_bits_per_dim, nll_bits_per_dim, \
    sample


def all_binary_images(size: int) -> torch.Tensor:
    pixels = torch.tensor(list(itertools.product([0.0, 1.0], repeat=size * size)))
    return pixels.reshape(-1, 1, size, size)


def test_output_pixel_never_depends_on_itself_or_later_pixels() -> None:
    torch.manual_seed(0)
    model = PixelCNN(hidden=16, layers=3, first_kernel=5)
    x = (torch.rand(1, 1, 8, 8) > 0.5).float()
    jacobian = torch.autograd.functional.jacobian(lambda v: model(v.reshape(1, 1, 8, 8)).reshape(64), x.reshape(64))
    later_or_same = torch.ones(64, 64).triu().bool()
    assert float(jacobian[later_or_same].abs().max()) == 0.0
    left_neighbour = torch.tensor([jacobian[i, i - 1].item() for i in range(64) if i % 8])
    assert bool((left_neighbour != 0).all())


def test_mask_b_keeps_the_centre_and_mask_a_hides_it() -> None:
    a, b = MaskedConv2d("A", 1, 1, 3).mask[0, 0], MaskedConv2d("B", 1, 1, 3).mask[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="mask_type must be 'A' or 'B'"):
        MaskedConv2d("C", 1, 1, 3)


def test_likelihood_is_exact_it_sums_to_one_over_all_images() -> None:
    torch.manual_seed(1)
    model = PixelCNN(hidden=8, layers=2, first_kernel=3)
    images = all_binary_images(3)
    with torch.no_grad():
        bits = nll_bits_per_dim(model(images), images)
    probabilities = torch.exp2(-bits.double() * 9)
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_samples_follow_the_model_distribution() -> None:
    torch.manual_seed(2)
    model = PixelCNN(hidden=8, layers=2, first_kernel=3)
    images = all_binary_images(2)
    with torch.no_grad():
        exact = torch.exp2(-nll_bits_per_dim(model(images), images) * 4)
    drawn = sample(model, 20000, 2, 2, generator=torch.Generator().manual_seed(3))
    assert set(drawn.unique().tolist()) <= {0.0, 1.0}
    codes = (drawn.reshape(-1, 4) * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    frequencies = torch.bincount(codes, minlength=16).float() / 20000
    assert torch.allclose(frequencies, exact, atol=0.015)


def test_bernoulli_baseline_matches_its_definition() -> None:
    train = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 1.0]]], [[[1.0, 0.0]]]])
    test = torch.tensor([[[[1.0, 1.0]]]])
    p_first, p_second = 4 / 5, 2 / 5
    expected = -(math.log2(p_first) + math.log2(p_second)) / 2
    assert bernoulli_baseline_bits_per_dim(train, test) == pytest.approx(expected, rel=1e-5)


def test_pixelcnn_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"expected binary images \(B, 1, H, W\)"):
        PixelCNN(hidden=4, layers=1)(torch.zeros(2, 3, 8, 8))

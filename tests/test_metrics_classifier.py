"""The digit classifier: trains well, deterministically, without touching the caller's RNG; is cached
and rebuilt when the cache file is unreadable; labels and features have the documented shapes. (Its build time is
a benchmark: benchmarks/bench_classifier.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gendiag.data import load_digits
from gendiag.metrics import frechet_distance_between
from gendiag.metrics.classifier import FEATURE_DIM, DigitClassifier, DigitNet, load_classifier


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
def test_digits_classifier_trains_accurately_and_caches(cache: Path) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    classifier = load_classifier("digits", cache_dir=cache)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's global generator is untouched
    assert classifier.heldout_accuracy > 0.95
    files = list(cache.glob("classifier-digits-*.pt"))
    assert len(files) == 1

    images, labels = load_digits()
    cached = load_classifier("digits", cache_dir=cache)
    assert torch.equal(cached.predict(images), classifier.predict(images))
    assert (classifier.predict(images) == labels).float().mean() > 0.95
    assert classifier(images.reshape(len(images), -1)).shape == (len(images),)
    features = classifier.features(images[:100])
    assert features.shape == (100, FEATURE_DIM) and features.dtype == torch.float32

    files[0].write_bytes(b"not a checkpoint")
    rebuilt = load_classifier("digits", cache_dir=cache)
    assert torch.equal(rebuilt.predict(images), classifier.predict(images))  # same seed, same network

    # In its feature space, two halves of the real data are closer than real data and noise.
    half = len(images) // 2
    real_vs_real = frechet_distance_between(classifier.features(images[:half]), classifier.features(images[half:]))
    noise = torch.rand(half, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    real_vs_noise = frechet_distance_between(classifier.features(images[:half]), classifier.features(noise))
    assert real_vs_real * 10 < real_vs_noise


def test_wrong_image_shape_and_kind_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        load_classifier("cifar", cache_dir=tmp_path)
    classifier = DigitClassifier("digits", DigitNet(8), heldout_accuracy=0.0)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, 8, 8\) or \(N, 64\)"):
        classifier.predict(torch.zeros(2, 1, 28, 28))

"""Shared by the digit-image recipes: a fixed train/test split, sample grids, and sample quality judged by the
project's digit classifier (class coverage, Fréchet distance in its feature space beside train-vs-test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from gendiag.data import load_digits, load_mnist
from gendiag.metrics import class_coverage, frechet_distance_between

DATASETS = {"digits": load_digits, "mnist": load_mnist}


@dataclass
class DigitSplit:
    """Images (N, 1, H, W) in [0, 1] and their labels, split once with a fixed generator."""

    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor


def split_digits(dataset: str, test_fraction: float, generator: torch.Generator) -> DigitSplit:
    """The first `test_fraction` of a random permutation is the test set (with a generator seeded 0 and fraction 0.2
    this is the split the project's digit classifier held out, so its test images were never trained on)."""
    if dataset not in DATASETS:
        raise ValueError(f"split_digits: dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    images, labels = DATASETS[dataset]()
    order = torch.randperm(len(images), generator=generator)
    n_test = int(test_fraction * len(images))
    test, train = order[:n_test], order[n_test:]
    return DigitSplit(images[train], labels[train], images[test], labels[test])


@dataclass
class DigitQuality:
    """What the classifier sees in generated images: the classes and their shares, and Fréchet distances."""

    classes_found: int
    largest_share: float
    counts: list[int]
    fd_samples_test: float
    fd_train_test: float

    @property
    def met(self) -> bool:
        """The reference bar: all 10 classes present and none above 20% of the samples."""
        return self.classes_found == 10 and self.largest_share <= 0.2

    def text(self, n: int) -> str:
        return (f"The digit classifier finds {self.classes_found}/10 classes among {n} samples; the largest class "
                f"holds {self.largest_share:.1%} (counts {self.counts}); bar: all 10, none above 20% — "
                f"{'met' if self.met else 'missed'}. Fréchet distance in the classifier's features: samples vs test "
                f"{self.fd_samples_test:.3f}, train vs test {self.fd_train_test:.3f}.")

    def results(self) -> dict[str, Any]:
        return {"classes_found": self.classes_found, "largest_class_share": self.largest_share,
                "fd_samples_test": self.fd_samples_test, "fd_train_test": self.fd_train_test}


def digit_quality(samples: torch.Tensor, split: DigitSplit, classifier: Any) -> DigitQuality:
    """Judge samples (N, 1, H, W) in [0, 1] with a classifier that has `.predict(images)` and `.features(images)`."""
    coverage = class_coverage(torch.as_tensor(classifier.predict(samples)).long(), 10)
    test_features = classifier.features(split.test)
    return DigitQuality(
        classes_found=coverage.classes_found, largest_share=coverage.largest_share,
        counts=[int(c) for c in coverage.counts],
        fd_samples_test=frechet_distance_between(classifier.features(samples), test_features),
        fd_train_test=frechet_distance_between(classifier.features(split.train), test_features),
    )


def image_grid(rows: list[tuple[str, torch.Tensor]], per_row: int = 16) -> plt.Figure:
    """One row of images (N, 1, H, W) in [0, 1] per (title, images)."""
    figure, axes = plt.subplots(len(rows), 1, figsize=(per_row * 0.6, 0.9 * len(rows)), squeeze=False)
    for axis, (title, images) in zip(axes[:, 0], rows):
        strip = torch.cat(list(images[:per_row, 0].clamp(0, 1)), dim=1)
        axis.imshow(strip.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(title, fontsize=9, loc="left")
        axis.axis("off")
    figure.tight_layout()
    return figure

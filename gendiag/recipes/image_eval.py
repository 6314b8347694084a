"""Shared by the image recipes (GAN, VAE, DDPM, PixelCNN): a fixed train/held-out split, class coverage and the
Fréchet distance of generated digits in the project's own classifier's feature space beside the train-versus-held-out
distance, and a grid figure of images."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from gendiag.data import load_digits, load_mnist
from gendiag.metrics import class_coverage, frechet_distance_between
from gendiag.metrics.classifier import DigitClassifier

IMAGE_SETS = ("mnist", "digits")


@dataclass
class ImageSplit:
    """Images in [0, 1], (N, 1, S, S), with labels; `heldout` is never trained on."""

    train: torch.Tensor
    train_labels: torch.Tensor
    heldout: torch.Tensor
    kind: str


def load_split(kind: str, heldout: int | float, train_size: int | None, generator: torch.Generator) -> ImageSplit:
    """MNIST-10k or the 8×8 digits, shuffled with `generator`: the first `heldout` images held out (a float in
    (0, 1) is a fraction of the set), then up to `train_size` training images (all the rest when None)."""
    if kind not in IMAGE_SETS:
        raise ValueError(f"load_split: image set must be one of {IMAGE_SETS}, got {kind!r}")
    images, labels = load_mnist() if kind == "mnist" else load_digits()
    if isinstance(heldout, float):
        if not 0 < heldout < 1:
            raise ValueError(f"load_split: a fractional heldout must lie in (0, 1), got {heldout}")
        heldout = int(heldout * len(images))
    if heldout >= len(images):
        raise ValueError(f"load_split: heldout={heldout} leaves no training images of the {len(images)} in {kind}")
    order = torch.randperm(len(images), generator=generator)
    train = order[heldout:] if train_size is None else order[heldout:heldout + train_size]
    return ImageSplit(images[train], labels[train], images[order[:heldout]], kind)


@dataclass
class ImageComparison:
    """Class coverage of `n` generated images and their Fréchet distance to held-out images; the floor is the
    distance of `n` training images to the same held-out images."""

    n: int
    counts: list[int]
    classes_found: int
    largest_share: float
    class_kl: float
    frechet: float
    frechet_floor: float

    @property
    def met(self) -> bool:
        """The reference models' bar: all 10 classes present and none above 20% of the samples."""
        return self.classes_found == 10 and self.largest_share <= 0.2

    def results(self) -> dict[str, float]:
        return {"classes_found": self.classes_found, "largest_class_share": self.largest_share,
                "class_kl": self.class_kl, "frechet": self.frechet, "frechet_floor": self.frechet_floor}

    def text(self) -> str:
        return (f"{self.n} generated images, labelled by the project's digit classifier: {self.classes_found} of 10 "
                f"classes found, largest class {self.largest_share:.1%}, KL of the class histogram to uniform "
                f"{self.class_kl:.3f} (counts {self.counts}). Fréchet distance to held-out images in the "
                f"classifier's feature space {self.frechet:.2f}; {self.n} training images give "
                f"{self.frechet_floor:.2f} (the floor).")


def compare_images(samples: torch.Tensor, split: ImageSplit, classifier: DigitClassifier,
                   generator: torch.Generator) -> ImageComparison:
    """Class coverage and Fréchet distance of generated images in [0, 1] shaped like the data."""
    n = samples.shape[0]
    coverage = class_coverage(classifier.predict(samples), classifier.n_classes)
    reference = classifier.features(split.heldout).numpy()
    real = split.train[torch.randperm(len(split.train), generator=generator)[:n]]
    return ImageComparison(
        n=n, counts=coverage.counts.tolist(), classes_found=coverage.classes_found,
        largest_share=coverage.largest_share, class_kl=coverage.kl_to_uniform,
        frechet=frechet_distance_between(classifier.features(samples).numpy(), reference),
        frechet_floor=frechet_distance_between(classifier.features(real).numpy(), reference),
    )


def image_grid(panels: list[tuple[str, torch.Tensor]], columns: int = 10, max_rows: int = 10) -> plt.Figure:
    """One grid per (title, images (N, 1, S, S) in [0, 1]), side by side: the first full rows of `columns` images,
    at most `max_rows` of them."""
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False)
    for axis, (title, images) in zip(axes[0], panels):
        rows = max(1, min(max_rows, images.shape[0] // columns))
        side = images.shape[-1]
        grid = images[:rows * columns, 0].reshape(rows, columns, side, side).permute(0, 2, 1, 3)
        axis.imshow(np.asarray(grid.reshape(rows * side, columns * side)), cmap="gray", vmin=0, vmax=1)
        axis.set_title(title)
        axis.axis("off")
    figure.tight_layout()
    return figure

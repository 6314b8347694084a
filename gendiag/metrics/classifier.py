"""Small CNN digit classifiers the project trains itself: one on scikit-learn's 8x8 digits, one on MNIST's 10,000
test images (28x28). They label generated images (class coverage) and give penultimate-layer features for the
Fréchet distance, with no download.

Training is deterministic (fixed seed, run inside `torch.random.fork_rng` so the caller's global generator is
untouched) and the weights are cached under the user's cache folder (`$GENDIAG_CACHE`, else
`$XDG_CACHE_HOME/gendiag`, else `~/.cache/gendiag`); a missing or unreadable cache file is rebuilt."""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gendiag.io import atomic_write_bytes

FEATURE_DIM = 64
N_CLASSES = 10
VERSION = 1  # bump when the network or its training changes, so stale cache files are not loaded


@dataclass(frozen=True)
class Recipe:
    """How one classifier is trained."""

    image_size: int
    epochs: int
    batch_size: int
    lr: float
    heldout_share: float


RECIPES = {
    "digits": Recipe(image_size=8, epochs=12, batch_size=64, lr=2e-3, heldout_share=0.2),
    "mnist": Recipe(image_size=28, epochs=4, batch_size=64, lr=1e-3, heldout_share=0.2),
}


class DigitNet(nn.Module):
    """Two 3x3 convolutions (with 2x2 max-pooling on 28x28 input), a FEATURE_DIM-wide hidden layer, 10 logits."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        pool = image_size >= 16
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), *([nn.MaxPool2d(2)] if pool else []),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        side = image_size // 4 if pool else image_size // 2
        self.hidden = nn.Sequential(nn.Linear(64 * side * side, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, N_CLASSES)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.body(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class DigitClassifier:
    """A trained digit classifier. Images are (N, 1, S, S) or (N, S*S) with S its image size, values in [0, 1]
    like `gendiag.data.load_digits` / `load_mnist` (map a Tanh generator's [-1, 1] output with (x + 1) / 2).
    Calling it is `predict`, so it serves as the Monitor's `classifier=` fact."""

    n_classes = N_CLASSES

    def __init__(self, kind: str, net: DigitNet, heldout_accuracy: float) -> None:
        self.kind = kind
        self.image_size = RECIPES[kind].image_size
        self.net = net.eval()
        self.heldout_accuracy = heldout_accuracy

    def _batch(self, images: Any) -> torch.Tensor:
        images = torch.as_tensor(images).detach().float().cpu()
        side = self.image_size
        if images.dim() == 2 and images.shape[1] == side * side:
            images = images.reshape(-1, 1, side, side)
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, side, side):
            raise ValueError(f"{self.kind} classifier: expected images of shape (N, 1, {side}, {side}) or "
                             f"(N, {side * side}), got {tuple(images.shape)}")
        return images

    def _run(self, images: Any, features: bool, batch_size: int = 1024) -> torch.Tensor:
        images = self._batch(images)
        with torch.no_grad():
            parts = [self.net.features(chunk) if features else self.net(chunk)
                     for chunk in images.split(batch_size)]
        return torch.cat(parts)

    def predict(self, images: Any) -> torch.Tensor:
        """Class labels, int64 (N,)."""
        return self._run(images, features=False).argmax(dim=1)

    def features(self, images: Any) -> torch.Tensor:
        """Penultimate-layer features, float32 (N, FEATURE_DIM), for the Fréchet distance."""
        return self._run(images, features=True)

    def __call__(self, images: Any) -> torch.Tensor:
        return self.predict(images)


def default_cache_dir() -> Path:
    """$GENDIAG_CACHE, else $XDG_CACHE_HOME/gendiag, else ~/.cache/gendiag."""
    if os.environ.get("GENDIAG_CACHE"):
        return Path(os.environ["GENDIAG_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gendiag"


def _dataset(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    from gendiag.data import load_digits, load_mnist

    return load_digits() if kind == "digits" else load_mnist()


def train_classifier(kind: str = "digits", seed: int = 0) -> DigitClassifier:
    """Train a classifier from scratch on `kind` ("digits" or "mnist"), deterministically for a given seed; its
    held-out accuracy is measured on a fixed 20% split never trained on."""
    if kind not in RECIPES:
        raise ValueError(f"train_classifier: kind must be one of {sorted(RECIPES)}, got {kind!r}")
    recipe = RECIPES[kind]
    images, labels = _dataset(kind)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    n_heldout = int(len(images) * recipe.heldout_share)
    heldout, train = order[:n_heldout], order[n_heldout:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DigitNet(recipe.image_size)
        optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr)
        net.train()
        for _ in range(recipe.epochs):
            for batch in train[torch.randperm(len(train), generator=generator)].split(recipe.batch_size):
                loss = nn.functional.cross_entropy(net(images[batch]), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(images[heldout]).argmax(1) == labels[heldout]).float().mean())
    return DigitClassifier(kind, net, accuracy)


def load_classifier(kind: str = "digits", seed: int = 0, cache_dir: str | Path | None = None,
                    rebuild: bool = False) -> DigitClassifier:
    """The cached classifier for `kind` and `seed`, trained (and cached) when absent, unreadable or `rebuild`."""
    if kind not in RECIPES:
        raise ValueError(f"load_classifier: kind must be one of {sorted(RECIPES)}, got {kind!r}")
    path = Path(cache_dir or default_cache_dir()) / f"classifier-{kind}-v{VERSION}-seed{seed}.pt"
    if path.is_file() and not rebuild:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net = DigitNet(RECIPES[kind].image_size)
            net.load_state_dict(saved["state_dict"])
            return DigitClassifier(kind, net, float(saved["heldout_accuracy"]))
        except (RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError):
            pass  # a stale or corrupt cache file is replaced below
    classifier = train_classifier(kind, seed)
    buffer = io.BytesIO()
    torch.save({"state_dict": classifier.net.state_dict(), "heldout_accuracy": classifier.heldout_accuracy}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return classifier

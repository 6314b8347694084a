"""Offline image datasets: counts, shapes, ranges and labels; clear errors for missing or corrupt MNIST files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gendiag.data import load_digits, load_mnist
from gendiag.data.images import MNIST_IMAGES, MNIST_LABELS, MNIST_ROOT

MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_digits_load_with_labels() -> None:
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == 0 and images.max() == 1
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert sorted(labels.unique().tolist()) == list(range(10))


def test_mnist_test_set_loads_with_labels() -> None:
    images, labels = load_mnist()
    assert images.shape == (10000, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() == 0 and images.max() == 1
    assert labels.dtype == torch.int64 and torch.bincount(labels).tolist() == MNIST_TEST_LABEL_COUNTS
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert 0.1 < images.mean() < 0.15


def copy_mnist(tmp_path: Path) -> Path:
    for name in (MNIST_IMAGES, MNIST_LABELS):
        shutil.copyfile(MNIST_ROOT / name, tmp_path / name)
    return tmp_path


def test_mnist_from_another_root_and_a_missing_file(tmp_path: Path) -> None:
    root = copy_mnist(tmp_path)
    assert load_mnist(root)[1].shape == (10000,)
    (root / MNIST_LABELS).unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_mnist(root)
    message = str(error.value)
    assert str(root / MNIST_LABELS) in message and MNIST_IMAGES in message


@pytest.mark.parametrize("payload,reason", [
    (b"not gzip at all", "gzip"),
    (gzip.compress(b"\x00\x00", mtime=0), "magic number None"),
    ((MNIST_ROOT / MNIST_LABELS).read_bytes(), "magic number 2049, expected 2051"),
    (gzip.compress(np.array([2051, 2, 28], dtype=">i4").tobytes(), mtime=0), "shorter than the idx header"),
    (gzip.compress(np.array([2051, 2, 28, 28], dtype=">i4").tobytes() + bytes(100), mtime=0), "holds 100 values"),
])
def test_corrupt_mnist_images_name_the_path_and_the_problem(tmp_path: Path, payload: bytes, reason: str) -> None:
    root = copy_mnist(tmp_path)
    (root / MNIST_IMAGES).write_bytes(payload)
    with pytest.raises(ValueError, match=reason) as error:
        load_mnist(root)
    assert str(root / MNIST_IMAGES) in str(error.value) and MNIST_LABELS in str(error.value)

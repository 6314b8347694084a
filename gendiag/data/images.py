"""Image datasets that need no download: scikit-learn's embedded 8x8 digits and the MNIST 10k test set (idx files)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

MNIST_ROOT = Path(__file__).resolve().parent.parent / "datasets" / "mnist"
MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = "t10k-labels-idx1-ubyte.gz"
_IDX_MAGIC = {1: 2049, 3: 2051}  # unsigned bytes, 1-D labels and 3-D images


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits: images float32 (1797, 1, 8, 8) in [0, 1] (pixel counts 0..16 divided by 16) and
    labels int64 (1797,)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read a gzipped idx file of unsigned bytes with `ndim` dimensions; the magic number and length are checked."""
    expected = f"expected {MNIST_IMAGES} and {MNIST_LABELS}"
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file not found: {path} ({expected} in {path.parent})")
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"corrupt MNIST file {path}: not a readable gzip file ({error}); {expected}") from error
    header_bytes = 4 * (1 + ndim)
    magic = int(np.frombuffer(raw, dtype=">i4", count=1)[0]) if len(raw) >= 4 else None
    if magic != _IDX_MAGIC[ndim]:
        raise ValueError(f"corrupt MNIST file {path}: magic number {magic}, expected {_IDX_MAGIC[ndim]} "
                         f"(idx, unsigned bytes, {ndim}-D); {expected}")
    if len(raw) < header_bytes:
        raise ValueError(f"corrupt MNIST file {path}: {len(raw)} bytes, shorter than the idx header; {expected}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if len(raw) - header_bytes != int(np.prod(shape)):
        raise ValueError(f"corrupt MNIST file {path}: header says shape {shape} but holds "
                         f"{len(raw) - header_bytes} values; {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(shape)


def load_mnist(root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's 10,000-image test set from `root` (default: the copy shipped in gendiag/datasets/mnist/): images
    float32 (10000, 1, 28, 28) in [0, 1] (bytes divided by 255) and labels int64 (10000,)."""
    folder = MNIST_ROOT if root is None else Path(root)
    pixels = read_idx(folder / MNIST_IMAGES, ndim=3)
    labels = read_idx(folder / MNIST_LABELS, ndim=1)
    if len(pixels) != len(labels):
        raise ValueError(f"MNIST files in {folder} disagree: {len(pixels)} images but {len(labels)} labels")
    images = torch.from_numpy(pixels.astype(np.float32) / 255.0).unsqueeze(1)
    return images, torch.from_numpy(labels.astype(np.int64))

"""Class coverage of generated images, from the labels a classifier gives them: which classes appear, how large
the largest class is, and KL(P_gen || uniform) of the class histogram (the same direction and convention as the
known-mode reverse KL in `gendiag.metrics.modes`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gendiag.metrics.modes import Coverage


@dataclass(frozen=True)
class ClassCoverage(Coverage):
    """`Coverage` of the predicted labels over the classes."""

    classes_found = Coverage.n_covered


def class_coverage(labels: Any, n_classes: int) -> ClassCoverage:
    """Histogram of predicted `labels` (N,) over classes 0 .. n_classes - 1."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"class_coverage: n_classes must be a positive int, got {n_classes!r}")
    if labels.ndim != 1 or len(labels) == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"class_coverage: labels must be a non-empty 1-D integer array, got dtype {labels.dtype} "
                         f"and shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"class_coverage: labels must lie in 0 .. {n_classes - 1}, got {labels.min()} .. "
                         f"{labels.max()}")
    return ClassCoverage(counts=np.bincount(labels, minlength=n_classes))

"""Sample-quality metrics: distances between generated and real samples."""

from gendiag.metrics.wasserstein import wasserstein2

__all__ = ["wasserstein2"]

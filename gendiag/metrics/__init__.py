"""Sample-quality metrics: distances between generated and real samples, known-mode and class coverage,
precision/recall/density/coverage, Fréchet distance, memorization and the energy two-sample test."""

from gendiag.metrics.classes import ClassCoverage, class_coverage
from gendiag.metrics.energy import energy_coefficient, energy_distance, energy_test
from gendiag.metrics.frechet import feature_statistics, frechet_distance, frechet_distance_between
from gendiag.metrics.memorization import Memorization, birthday_support, duplicate_pairs, memorization
from gendiag.metrics.modes import Coverage, ModeMetrics, kl_to_uniform, mode_metrics
from gendiag.metrics.prdc import PRDC, ImprovedPR, improved_precision_recall, prdc
from gendiag.metrics.wasserstein import wasserstein2

__all__ = [
    "ClassCoverage", "Coverage", "ImprovedPR", "Memorization", "ModeMetrics", "PRDC", "birthday_support", "class_coverage",
    "duplicate_pairs", "energy_coefficient", "energy_distance", "energy_test", "feature_statistics",
    "frechet_distance", "frechet_distance_between", "improved_precision_recall", "kl_to_uniform", "memorization", "mode_metrics", "prdc", "wasserstein2",
]

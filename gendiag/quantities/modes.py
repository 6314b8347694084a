"""Coverage of known modes or classes over training: one timeline of `Coverage` observations, whichever the unit.

Each `observe_samples` adds one observation: the step, how many samples were drawn and their `Coverage`
(`gendiag.metrics.modes`: high-quality samples over known modes; `gendiag.metrics.classes`: predicted labels over
classes). The timeline answers since when a part has been missing and whether it was ever covered; `miss_chance`
and `kl_noise` say how much of a gap sampling alone explains."""

from __future__ import annotations

from dataclasses import dataclass

from gendiag.metrics.modes import Coverage
from gendiag.metrics.statistics import chi2_quantile

UNITS = {"mode": "modes", "class": "classes"}


@dataclass(frozen=True)
class Observation:
    """The coverage of one batch of generated samples. `high_quality_share` is the share of samples within the
    high-quality radius of a known mode (None for classes)."""

    step: int
    n_samples: int
    coverage: Coverage
    high_quality_share: float | None = None


class CoverageTimeline:
    """Observations of one unit ("mode" or "class") over K parts, in step order."""

    def __init__(self, unit: str, n_units: int) -> None:
        if unit not in UNITS:
            raise ValueError(f"CoverageTimeline: unit must be one of {tuple(UNITS)}, got {unit!r}")
        self.unit = unit
        self.n_units = n_units
        self.observations: list[Observation] = []

    @property
    def plural(self) -> str:
        return UNITS[self.unit]

    def add(self, observation: Observation) -> None:
        if observation.coverage.n_units != self.n_units:
            raise ValueError(f"CoverageTimeline: an observation over {observation.coverage.n_units} {self.plural}, "
                             f"expected {self.n_units}")
        self.observations.append(observation)

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def last(self) -> Observation:
        return self.observations[-1]

    @property
    def steps(self) -> list[int]:
        return [entry.step for entry in self.observations]

    def covered_over_time(self) -> list[int]:
        return [entry.coverage.n_covered for entry in self.observations]

    def missing_since(self, k: int) -> int:
        """Step of the first observation of the final unbroken run in which part `k` was not covered."""
        since = self.last.step
        for entry in reversed(self.observations):
            if entry.coverage.covered[k]:
                break
            since = entry.step
        return since

    def never_covered(self, k: int) -> bool:
        return not any(entry.coverage.covered[k] for entry in self.observations)


def miss_chance(n_modes: int, n_samples: int) -> float:
    """Upper bound (union bound) on the probability that n samples spread evenly over n_modes miss some mode."""
    return min(1.0, n_modes * (1.0 - 1.0 / n_modes) ** n_samples) if n_modes > 1 else 0.0


def kl_noise(n_units: int, n_in_histogram: int, quantile: float) -> float:
    """The `quantile` of KL(p || uniform) for n samples drawn evenly over K parts: 2 n KL is the G statistic,
    chi-squared with K - 1 degrees of freedom."""
    return chi2_quantile(quantile, n_units - 1) / (2 * max(n_in_histogram, 1))


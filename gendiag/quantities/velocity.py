"""The learned velocity field against the exact marginal field of the observed data: the field error per t and the
field's sensitivity to x and to t, each the learned field's relative variation over the exact field's.

The exact field is the one of the probability path the network was trained on (`path`, an affine path of
`reference_models.paths`; the linear one when not told), from N(0, I) noise or from source rows read as a mixture
of Gaussians when the source is not N(0, I)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from gendiag.flow.exact_field import exact_velocity
from reference_models.paths import PATHS, AffinePath, LinearPath

QUIVER_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)
LAST_T = 0.99
SENSITIVITY_X_TIMES = (0.0, 0.25, 0.5, 0.75)
SENSITIVITY_T_TIMES = tuple(i / 10 for i in range(10))
PATH_METHODS = ("alpha", "beta", "d_alpha", "d_beta")

Field = Callable[[torch.Tensor, "float | torch.Tensor"], torch.Tensor]


def relative_variation(values: torch.Tensor, dim: int) -> float:
    """RMS deviation of `values` from their mean along `dim`, divided by their RMS: how much the vectors (last
    axis) change along `dim` compared with their size (0: not at all)."""
    values = values.double()
    spread = (values - values.mean(dim, keepdim=True)).pow(2).sum(-1).mean()
    size = values.pow(2).sum(-1).mean()
    return float((spread / size).sqrt()) if size > 0 else 0.0


def known_path(value: Any) -> AffinePath | None:
    """The affine path the fact `path` names: LinearPath when not given, a path of `reference_models.paths` by
    name, an object with alpha, beta, d_alpha and d_beta as it is; None for a name gendiag does not know."""
    if value is None:
        return LinearPath()
    if isinstance(value, str):
        return PATHS[value]() if value in PATHS else None
    return value if all(callable(getattr(value, m, None)) for m in PATH_METHODS) else None


def path_name(path: Any) -> str:
    """The name a path goes by in the report: its `name` attribute, else its class name."""
    return str(getattr(path, "name", None) or type(path).__name__)


def exact_field(data: torch.Tensor, path: AffinePath, source: torch.Tensor | None = None,
                bandwidth: float | None = None) -> Field:
    """u*(x, t) of the data rows for `path` (float64), from N(0, I) or from the mixture of `source` rows."""
    linear = isinstance(path, LinearPath)

    def field(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        return exact_velocity(x.double(), t, data, chunk=512, dtype=torch.float64, source=source,
                              bandwidth=bandwidth, path=None if linear else path)
    return field


@dataclass(frozen=True)
class FieldComparison:
    """The learned field against the exact one on points x_t of the path.

    field_error: per t (t = 1 read at LAST_T), mean |u_θ − u*|² / mean |u*|²; sensitivity_x: per t, the learned
    output's relative variation across x over the exact field's; sensitivity_t: the same across t in
    SENSITIVITY_T_TIMES at fixed x; over_t_learned / over_t_exact: those outputs, (points, times, D)."""

    field_error: dict[float, float]
    sensitivity_x: dict[float, float]
    sensitivity_t: float
    over_t_learned: torch.Tensor
    over_t_exact: torch.Tensor


def path_points(data: torch.Tensor, path: AffinePath, source: torch.Tensor | None,
                bandwidth: float | None) -> Callable[[float], torch.Tensor]:
    """x_t(t) on a fixed seeded draw of (x0, x1): x1 from the data rows, x0 from N(0, I) or the source mixture."""
    generator = torch.Generator().manual_seed(7)
    points = min(256 if data.shape[1] <= 2 else 128, len(data))
    x1 = data[torch.randint(0, len(data), (points,), generator=generator)].double()
    noise = torch.randn(x1.shape, generator=generator, dtype=torch.float64)
    if source is not None:  # a draw from the source mixture the exact field assumes
        noise = source[torch.randint(0, len(source), (points,), generator=generator)] + bandwidth * noise
    if isinstance(path, LinearPath):
        return lambda t: t * x1 + (1 - t) * noise
    return lambda t: path.interpolate(noise, x1, torch.full((points,), t, dtype=torch.float64))


def compare_fields(learned: Field, exact: Field, at: Callable[[float], torch.Tensor]) -> FieldComparison:
    """Field error and sensitivities of `learned` against `exact` on the path points `at(t)`. Each field is
    evaluated once per (points, time): the quiver times, the sensitivity times and t = 0.5 at the fixed points
    share their evaluations (14 a field instead of 19; a live check asks this every time)."""
    on_path = {time: (learned(at(time), time), exact(at(time), time))
               for time in sorted({min(t, LAST_T) for t in QUIVER_TIMES} | set(SENSITIVITY_X_TIMES))}
    errors = {}
    for t in QUIVER_TIMES:
        u_learned, u_exact = on_path[min(t, LAST_T)]
        errors[min(t, LAST_T)] = float((u_learned - u_exact).pow(2).sum(1).mean() / u_exact.pow(2).sum(1).mean())
    sensitivity_x = {t: relative_variation(on_path[t][0], 0) / relative_variation(on_path[t][1], 0)
                     for t in SENSITIVITY_X_TIMES}
    fixed_time = 0.5
    fixed = at(fixed_time)
    over_t = [on_path[t] if t == fixed_time and t in on_path else (learned(fixed, t), exact(fixed, t))
              for t in SENSITIVITY_T_TIMES]
    over_t_learned = torch.stack([pair[0] for pair in over_t], dim=1)
    over_t_exact = torch.stack([pair[1] for pair in over_t], dim=1)
    sensitivity_t = relative_variation(over_t_learned, 1) / relative_variation(over_t_exact, 1)
    return FieldComparison(errors, sensitivity_x, sensitivity_t, over_t_learned, over_t_exact)


def mean_std(moments: torch.Tensor) -> tuple[float, float] | None:
    """Mean and standard deviation from (count, sum, sum of squares); None for fewer than two values."""
    count, total, squares = (float(v) for v in moments)
    if count < 2:
        return None
    mean = total / count
    return mean, max(squares / count - mean ** 2, 0.0) ** 0.5

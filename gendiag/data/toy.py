"""2D toy distributions: seeded, vectorized point samplers, with closed-form densities where one exists.

Every sampler returns float32 tensors of shape (n, 2) drawn only from the `torch.Generator` it is given (or torch's
global generator when none is given), so the same seed gives the same points. Distributions with a known density
(`has_density`) expose `log_prob`, which probes use as ground truth; mixtures also expose `modes` and `mode_std`."""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

Bounds = tuple[tuple[float, float], tuple[float, float]]

_BOUND_STDS = 4.0  # half-width, in standard deviations, of the box reported by `bounds`


def _check_positive(name: str, value: float, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}: '{name}' must be a finite number > 0, got {value!r}")
    return float(value)


def _check_nonnegative(name: str, value: float, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: '{name}' must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: int, owner: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: '{name}' must be an integer >= {minimum}, got {value!r}")
    return value


def _as_matrix(name: str, value: Any, shape: tuple[int | None, int], owner: str) -> torch.Tensor:
    """Coerce `value` to a finite float64 tensor of `shape` (None = any length) or raise naming the argument."""
    try:
        tensor = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{owner}: '{name}' must be numeric with shape {shape}, got {value!r}") from error
    rows, cols = shape
    if tensor.dim() != len(shape) or tensor.shape[-1] != cols or (rows is not None and tensor.shape[0] != rows):
        expected = "(" + ", ".join("K" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{owner}: '{name}' must have shape {expected}, got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{owner}: '{name}' must be finite, got {value!r}")
    return tensor


def _as_vector(name: str, value: Any, length: int, owner: str) -> torch.Tensor:
    """Coerce `value` to a finite float64 vector of `length` or raise naming the argument."""
    try:
        tensor = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{owner}: '{name}' must be {length} numbers, got {value!r}") from error
    if tensor.shape != (length,):
        raise ValueError(f"{owner}: '{name}' must have shape ({length},), got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{owner}: '{name}' must be finite, got {value!r}")
    return tensor


class Distribution(ABC):
    """A 2D distribution: `sample(n, generator)` -> float32 (n, 2); `bounds` holds nearly all of its mass."""

    name: str = ""
    has_density: bool = False

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n points as a float32 (n, 2) tensor, using only `generator` for randomness."""
        _check_count("n", n, f"{self.name}.sample", 0)
        return self._sample(n, generator).to(torch.float32)

    @abstractmethod
    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """n points as a float64 (n, 2) tensor."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density at each row of x (N, 2), as float32 (N,); only where `has_density`."""
        if not self.has_density:
            raise NotImplementedError(f"distribution '{self.name}' has no closed-form density (log_prob)")
        points = _check_points(x, f"{self.name}.log_prob")
        return self._log_prob(points).to(torch.float32)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density of float64 points (N, 2); overridden where `has_density`."""
        raise NotImplementedError(f"distribution '{self.name}' has no closed-form density (log_prob)")

    @property
    @abstractmethod
    def bounds(self) -> Bounds:
        """((xmin, ymin), (xmax, ymax)), a box that holds nearly all of the mass, for plots."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def _check_points(x: Any, owner: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: 'x' must be a torch.Tensor of shape (N, 2), got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"{owner}: 'x' must have shape (N, 2), got {tuple(x.shape)}")
    return x.to(torch.float64)


def _box(low: torch.Tensor, high: torch.Tensor) -> Bounds:
    return (float(low[0]), float(low[1])), (float(high[0]), float(high[1]))


def _normal(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(n, 2, generator=generator, dtype=torch.float64)


class Gaussian(Distribution):
    """Gaussian with any mean (2,) and symmetric positive-definite covariance (2, 2); `mean` and `cov` are float32
    like the samples (computations run in float64)."""

    has_density = True

    def __init__(self, mean: Sequence[float] = (0.0, 0.0),
                 cov: Sequence[Sequence[float]] = ((1.0, 0.0), (0.0, 1.0)), name: str = "gaussian") -> None:
        self.name = name
        self._mean = _as_vector("mean", mean, 2, name)
        self._cov = _as_matrix("cov", cov, (2, 2), name)
        if not torch.allclose(self._cov, self._cov.T):
            raise ValueError(f"{name}: 'cov' must be symmetric, got {self._cov.tolist()}")
        self._scale_tril, info = torch.linalg.cholesky_ex(self._cov)
        if info != 0:
            raise ValueError(f"{name}: 'cov' must be positive definite, got {self._cov.tolist()}")
        self._mvn = torch.distributions.MultivariateNormal(self._mean, scale_tril=self._scale_tril)
        self.mean, self.cov = self._mean.float(), self._cov.float()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self._mean + _normal(n, generator) @ self._scale_tril.T

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self._mvn.log_prob(x)

    @property
    def bounds(self) -> Bounds:
        half = _BOUND_STDS * self._cov.diagonal().sqrt()
        return _box(self._mean - half, self._mean + half)


def stretched_gaussian(mean: Sequence[float] = (-2.0, 1.0),
                       cov: Sequence[Sequence[float]] = ((1.5, 0.5), (0.5, 0.8))) -> Gaussian:
    """The correlated, off-centre Gaussian used as a simple target: mean (-2, 1), cov [[1.5, 0.5], [0.5, 0.8]]."""
    return Gaussian(mean, cov, name="stretched_gaussian")


class Mixture(Distribution):
    """Mixture of isotropic Gaussians sharing one standard deviation: centres (K, 2), std, weights (K,).

    `modes` (K, 2) and `weights` (K,, normalized) are float32 like the samples; `mode_std` is the shared std."""

    has_density = True

    def __init__(self, centers: Sequence[Sequence[float]] = ((-1.0, 0.0), (1.0, 0.0)), std: float = 0.1,
                 weights: Sequence[float] | None = None, name: str = "mixture") -> None:
        self.name = name
        self._centers = _as_matrix("centers", centers, (None, 2), name)
        if self._centers.shape[0] == 0:
            raise ValueError(f"{name}: 'centers' must hold at least one centre, got none")
        self.mode_std = _check_positive("std", std, name)
        k = self._centers.shape[0]
        raw = torch.ones(k, dtype=torch.float64) if weights is None else _as_vector("weights", weights, k, name)
        if (raw < 0).any() or raw.sum() <= 0:
            raise ValueError(f"{name}: 'weights' must be >= 0 with a positive sum, got {raw.tolist()}")
        self._weights = raw / raw.sum()
        self.modes, self.weights = self._centers.float(), self._weights.float()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if n == 0:
            return torch.empty(0, 2, dtype=torch.float64)
        component = torch.multinomial(self._weights, n, replacement=True, generator=generator)
        return self._centers[component] + self.mode_std * _normal(n, generator)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        sq_dist = torch.cdist(x, self._centers).square()
        log_normal = -sq_dist / (2 * self.mode_std**2) - math.log(2 * math.pi * self.mode_std**2)
        return torch.logsumexp(log_normal + self._weights.log(), dim=1)

    @property
    def bounds(self) -> Bounds:
        margin = _BOUND_STDS * self.mode_std
        return _box(self._centers.min(dim=0).values - margin, self._centers.max(dim=0).values + margin)


def ring(n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Mixture:
    """The 2D-ring mode-collapse benchmark: n_modes equal Gaussians evenly spaced on a circle.

    Defaults follow PacGAN (Lin et al., 2018, sec. 5), which re-used the VEEGAN (Srivastava et al., 2017) protocol:
    8 modes at (cos(2*pi*i/8), sin(2*pi*i/8)), i.e. radius 1, each with variance 1e-4 per axis (std 0.01).
    VEEGAN's own paper used radius 2 and std 0.02: pass `radius=2, std=0.02` for that variant."""
    n_modes = _check_count("n_modes", n_modes, "ring", 1)
    radius = _check_positive("radius", radius, "ring")
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return Mixture(radius * torch.stack([angles.cos(), angles.sin()], dim=1), std, name="ring")


def grid(n_side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    """The 2D-grid mode-collapse benchmark: n_side x n_side equal Gaussians on a square lattice centred at 0.

    Defaults follow PacGAN (Lin et al., 2018, sec. 5) after VEEGAN: 25 modes at (-4 + 2i, -4 + 2j), i, j in 0..4,
    i.e. spacing 2 over {-4, -2, 0, 2, 4}^2, each with variance 0.0025 per axis (std 0.05)."""
    n_side = _check_count("n_side", n_side, "grid", 1)
    spacing = _check_positive("spacing", spacing, "grid")
    axis = spacing * (torch.arange(n_side, dtype=torch.float64) - (n_side - 1) / 2)
    xs, ys = torch.meshgrid(axis, axis, indexing="xy")
    return Mixture(torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), std, name="grid")


class _Affine(Distribution):
    """A base shape drawn in raw units, with Gaussian noise added there, then mapped to scale * raw + offset."""

    raw_low: tuple[float, float] = (0.0, 0.0)
    raw_high: tuple[float, float] = (0.0, 0.0)

    def __init__(self, noise: float, scale: float, offset: Sequence[float]) -> None:
        self.noise = _check_nonnegative("noise", noise, self.name)
        self.scale = _check_positive("scale", scale, self.name)
        self.offset = _as_vector("offset", offset, 2, self.name)

    @abstractmethod
    def _shape(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """n noise-free points of the base shape, float64 (n, 2), in raw units."""

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raw = self._shape(n, generator)
        if self.noise > 0:
            raw = raw + self.noise * _normal(n, generator)
        return self.scale * raw + self.offset

    @property
    def bounds(self) -> Bounds:
        margin = _BOUND_STDS * self.noise
        low = torch.tensor(self.raw_low, dtype=torch.float64) - margin
        high = torch.tensor(self.raw_high, dtype=torch.float64) + margin
        return _box(self.scale * low + self.offset, self.scale * high + self.offset)


def _split_shuffled(n: int, generator: torch.Generator | None) -> torch.Tensor:
    """scikit-learn's split: the first n // 2 points belong to the outer shape, the rest to the inner, then shuffled."""
    first = torch.arange(n) < n // 2
    return first[torch.randperm(n, generator=generator)]


class Moons(_Affine):
    """Two interleaving half circles, as scikit-learn's make_moons (n // 2 outer, the rest inner, Gaussian noise
    of std `noise` in raw units), then scale * raw + offset. scikit-learn spaces the angles with linspace over
    [0, pi]; here they are drawn uniformly on [0, pi], the same curve sampled at random.
    The failed project's data, make_moons(n, noise=0.05) * 5, is `moons(noise=0.05, scale=5)`."""

    name = "moons"
    raw_low, raw_high = (-1.0, -0.5), (2.0, 1.0)

    def __init__(self, noise: float = 0.05, scale: float = 1.0, offset: Sequence[float] = (0.0, 0.0)) -> None:
        super().__init__(noise, scale, offset)

    def _shape(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        outer = _split_shuffled(n, generator)
        angle = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        x = torch.where(outer, angle.cos(), 1 - angle.cos())
        y = torch.where(outer, angle.sin(), 0.5 - angle.sin())
        return torch.stack([x, y], dim=1)


class Circles(_Affine):
    """A large circle of radius 1 around a small one of radius `factor`, as scikit-learn's make_circles (n // 2
    outer, the rest inner, Gaussian noise of std `noise` in raw units), then scale * raw + offset. Angles are drawn
    uniformly on [0, 2*pi) instead of scikit-learn's linspace.
    The failed project's data, make_circles(n, noise=0.05, factor=0.5) * 5, is `circles(noise=0.05, factor=0.5,
    scale=5)`."""

    name = "circles"
    raw_low, raw_high = (-1.0, -1.0), (1.0, 1.0)

    def __init__(self, noise: float = 0.05, factor: float = 0.5, scale: float = 1.0,
                 offset: Sequence[float] = (0.0, 0.0)) -> None:
        super().__init__(noise, scale, offset)
        self.factor = _check_positive("factor", factor, self.name)
        if self.factor >= 1:
            raise ValueError(f"circles: 'factor' must be in (0, 1), got {factor!r}")

    def _shape(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        outer = _split_shuffled(n, generator)
        angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        radius = self.factor + (1 - self.factor) * outer.to(torch.float64)
        return radius[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)


class SwissRoll(_Affine):
    """scikit-learn's make_swiss_roll projected on its x/z plane: t ~ U[1.5*pi, 4.5*pi], raw point (t cos t, t sin t)
    plus Gaussian noise of std `noise`, then scale * raw + offset."""

    name = "swissroll"
    raw_low, raw_high = (-4.5 * math.pi, -4.5 * math.pi), (4.5 * math.pi, 4.5 * math.pi)

    def __init__(self, noise: float = 0.0, scale: float = 1.0, offset: Sequence[float] = (0.0, 0.0)) -> None:
        super().__init__(noise, scale, offset)

    def _shape(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
        return torch.stack([t * t.cos(), t * t.sin()], dim=1)


class Checkerboard(Distribution):
    """Uniform on the active cells of a grid_size x grid_size board over [-scale, scale]^2.

    Cell (column i, row j), counted from the bottom-left corner, is active when i + j is even: the variant of the MIT
    flow-matching lab (grid_size 3 and scale 5 in the failed project: `checkerboard(grid_size=3, scale=5)`). Points are
    drawn exactly, without rejection: an active cell uniformly, then a uniform point inside it."""

    name = "checkerboard"
    has_density = True

    def __init__(self, grid_size: int, scale: float, name: str = "checkerboard") -> None:
        self.name = name
        self.grid_size = _check_count("grid_size", grid_size, name, 1)
        self.scale = _check_positive("scale", scale, name)
        self.cell = 2 * self.scale / self.grid_size
        cols, rows = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="xy")
        active = (cols + rows) % 2 == 0
        self.active_cells = torch.stack([cols[active], rows[active]], dim=1).to(torch.float64)
        self.active_area = len(self.active_cells) * self.cell**2

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        chosen = torch.randint(len(self.active_cells), (n,), generator=generator)
        inside = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        return (self.active_cells[chosen] + inside) * self.cell - self.scale

    def cell_index(self, x: torch.Tensor) -> torch.Tensor:
        """(column, row) of the board cell holding each point (N, 2), as int64 (N, 2); may fall outside the board."""
        return torch.floor((x.to(torch.float64) + self.scale) / self.cell).long()

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        index = self.cell_index(x)
        on_board = ((index >= 0) & (index < self.grid_size)).all(dim=1)
        active = on_board & (index.sum(dim=1) % 2 == 0)
        inside = torch.full((len(x),), -math.log(self.active_area), dtype=torch.float64)
        return torch.where(active, inside, -math.inf)

    @property
    def bounds(self) -> Bounds:
        return (-self.scale, -self.scale), (self.scale, self.scale)


def checkerboard4(scale: float = 2 / 0.45) -> Checkerboard:
    """The 4x4 checkerboard of flow-matching tutorials (Meta's flow_matching 2D examples): points uniform on the 8
    cells with even column + row of the 4x4 board over [-2, 2]^2, divided by 0.45, so scale = 2 / 0.45 ~ 4.44."""
    return Checkerboard(grid_size=4, scale=scale, name="checkerboard4")


def _checkerboard(grid_size: int = 3, scale: float = 5.0) -> Checkerboard:
    return Checkerboard(grid_size=grid_size, scale=scale)


_checkerboard.__doc__ = Checkerboard.__doc__


def _gaussian(mean: Sequence[float] = (0.0, 0.0),
              cov: Sequence[Sequence[float]] = ((1.0, 0.0), (0.0, 1.0))) -> Gaussian:
    return Gaussian(mean, cov)


def _mixture(centers: Sequence[Sequence[float]] = ((-1.0, 0.0), (1.0, 0.0)), std: float = 0.1,
             weights: Sequence[float] | None = None) -> Mixture:
    return Mixture(centers, std, weights)


_gaussian.__doc__ = Gaussian.__doc__
_mixture.__doc__ = Mixture.__doc__

DISTRIBUTIONS = {
    "gaussian": _gaussian,
    "stretched_gaussian": stretched_gaussian,
    "mixture": _mixture,
    "ring": ring,
    "grid": grid,
    "moons": Moons,
    "circles": Circles,
    "checkerboard": _checkerboard,
    "checkerboard4": checkerboard4,
    "swissroll": SwissRoll,
}


def make_distribution(name: str, **params: Any) -> Distribution:
    """Build the named distribution from DISTRIBUTIONS; unknown names or parameters raise ValueError naming them."""
    if name not in DISTRIBUTIONS:
        raise ValueError(f"make_distribution: unknown distribution {name!r}; expected one of {', '.join(DISTRIBUTIONS)}")
    factory = DISTRIBUTIONS[name]
    accepted = [p for p in inspect.signature(factory).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"make_distribution({name!r}): unknown parameter {unknown[0]!r}; "
                         f"expected some of {', '.join(accepted)}")
    return factory(**params)

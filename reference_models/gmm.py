"""A Gaussian mixture fitted by EM (scikit-learn's GaussianMixture): the classical baseline with an exact
log-likelihood, sampled with a torch generator so draws are reproducible like every other model here."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture


class GMM:
    """K full-covariance Gaussians. `fit` runs EM to convergence; `em_step` runs one EM iteration at a time (for a
    training loop that reports the log-likelihood as it climbs)."""

    def __init__(self, components: int = 8, seed: int = 0, reg_covar: float = 1e-6) -> None:
        if components < 1:
            raise ValueError(f"GMM: components must be >= 1, got {components}")
        self.components = components
        self.mixture = GaussianMixture(components, covariance_type="full", random_state=seed, reg_covar=reg_covar)
        self.fitted = False

    def fit(self, x: torch.Tensor) -> "GMM":
        """EM to convergence on points (N, D)."""
        self.mixture.set_params(max_iter=500, warm_start=False).fit(_numpy(x, "fit"))
        self.fitted = True
        return self

    def em_step(self, x: torch.Tensor) -> float:
        """One EM iteration on (N, D), continuing from the previous one (k-means initialisation on the first);
        returns the mean log-likelihood per point after it."""
        points = _numpy(x, "em_step")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.mixture.set_params(max_iter=1, warm_start=True).fit(points)
        self.fitted = True
        return float(self.mixture.score(points))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log density of each point (N,), in nats."""
        self._check_fitted("log_prob")
        return torch.from_numpy(self.mixture.score_samples(_numpy(x, "log_prob"))).float()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n points (n, D) float32: a component by its weight, then mean + L·z with L the covariance's Cholesky."""
        self._check_fitted("sample")
        if n < 1:
            raise ValueError(f"GMM.sample: n must be >= 1, got {n}")
        weights = torch.from_numpy(self.mixture.weights_)
        means = torch.from_numpy(self.mixture.means_)
        cholesky = torch.linalg.cholesky(torch.from_numpy(self.mixture.covariances_))
        picked = torch.multinomial(weights, n, replacement=True, generator=generator)
        z = torch.randn(n, means.shape[1], generator=generator, dtype=torch.float64)
        return (means[picked] + (cholesky[picked] @ z[:, :, None])[:, :, 0]).float()

    def _check_fitted(self, where: str) -> None:
        if not self.fitted:
            raise ValueError(f"GMM.{where}: the mixture is not fitted yet; call fit or em_step first")


def _numpy(x: torch.Tensor, where: str) -> np.ndarray:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"GMM.{where}: expected points as a non-empty (N, D) tensor, got {shape}")
    return x.detach().cpu().double().numpy()

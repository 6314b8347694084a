"""The gmm recipe's case sections (its loop: gendiag/recipes/gmm.py)."""

from __future__ import annotations

from pydantic import Field

from gendiag.config import DistributionName, DistributionParams, Section
from gendiag.recipes import Recipe, register


class Data(Section):
    distribution: DistributionName = Field("moons", description="a name from gendiag.data.DISTRIBUTIONS")
    params: DistributionParams = Field(default_factory=dict, description="parameters of the distribution")
    train_points: int = Field(5000, ge=10, description="points EM is fitted on")
    heldout: int = Field(2000, ge=100, description="held-out points for the likelihood and W2")


class Model(Section):
    components: int = Field(16, ge=1)


class Training(Section):
    steps: int = Field(200, ge=1, description="the most EM iterations")
    tol: float = Field(1e-5, ge=0, description="stop when an iteration gains less mean log-likelihood than this")


class Sampling(Section):
    n_samples: int = Field(2000, ge=100)


register(Recipe(
    name="gmm",
    description="Gaussian mixture (EM, exact likelihood) on 2D point clouds: the classical baseline",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run="gendiag.recipes.gmm:run",
))

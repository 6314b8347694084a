"""The ddpm_points recipe's case sections and their check (its loop: gendiag/recipes/ddpm_points.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gendiag.config import Case, CaseError, DistributionName, Section
from gendiag.recipes import Recipe, register
from gendiag.recipes.schemas.common import PointsData, PointsModel, PointsTraining


class Data(PointsData):
    distribution: DistributionName = Field("swissroll", description="a name from gendiag.data.DISTRIBUTIONS")


class Model(PointsModel):
    hidden: int = Field(128, ge=8)
    depth: int = Field(3, ge=1)


class Training(PointsTraining):
    lr_decay: Literal["none", "cosine"] = Field("cosine", description="cosine: the lr falls to 0 by the last step")
    schedule: Literal["linear", "cosine"] = "linear"
    diffusion_steps: int = Field(100, ge=2, description="T, the number of noising steps")
    beta_start: float = Field(1e-4, gt=0, lt=1, description="linear schedule only")
    beta_end: float = Field(0.02, gt=0, lt=1, description="linear schedule only")


class Sampling(Section):
    method: Literal["ancestral", "ddim"] = "ancestral"
    ddim_steps: int = Field(50, ge=1, description="DDIM only")
    n_samples: int = Field(2000, ge=100)


def check(case: Case) -> None:
    """Settings that do not go together, refused when the case is loaded."""
    training = case.training
    if training.schedule == "linear" and training.beta_start > training.beta_end:
        raise CaseError(f"{case.path}: training.beta_start ({training.beta_start}) must not exceed "
                        f"training.beta_end ({training.beta_end})")


register(Recipe(
    name="ddpm_points",
    description="DDPM on 2D point clouds (MLP noise predictor, integer-step embedding)",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run="gendiag.recipes.ddpm_points:run",
    check=check,
))

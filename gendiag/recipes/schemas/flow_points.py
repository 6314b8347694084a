"""The flow_matching recipe's case sections (its loop: gendiag/recipes/flow_points.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gendiag.config import Section
from gendiag.recipes import Recipe, register
from gendiag.recipes.schemas.common import PointsData, PointsModel, PointsTraining


class Training(PointsTraining):
    path: Literal["linear", "sqrt"] = "linear"


class Sampling(Section):
    method: Literal["euler", "heun"] = "euler"
    steps: int = Field(100, ge=1)
    n_samples: int = Field(2000, ge=100)


register(Recipe(
    name="flow_matching",
    description="flow matching on 2D point clouds (a sample is a point)",
    sections={"data": PointsData, "model": PointsModel, "training": Training, "sampling": Sampling},
    run="gendiag.recipes.flow_points:run",
))

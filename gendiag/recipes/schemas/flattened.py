"""The flattened-image case's sections: data, model, training and sampling, as a case file gives them (its loop:
gendiag/recipes/flattened/loop.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gendiag.config import DistributionName, DistributionParams, Section
from gendiag.recipes import Recipe, register

LossKind = Literal["buggy_x0", "correct"]


class Data(Section):
    distribution: DistributionName = Field("moons", description="a name from gendiag.data.DISTRIBUTIONS")
    params: DistributionParams = Field(default_factory=dict, description="parameters of the distribution")
    image_size: int = Field(64, ge=4, le=256, description="images are image_size × image_size, flattened")
    render_scale: float = Field(5.0, gt=0, description="the rasterizer's square is [-render_scale, render_scale]²")
    mode: Literal["binary", "density"] = Field("binary", description="how points become pixels")
    points_per_image: int = Field(50_000, ge=1, description="fresh points rendered into each image")
    source: Literal["rendered_gaussian", "pixel_noise"] = Field(
        "rendered_gaussian", description="the original's rendered standard-Gaussian images, or pixel noise N(0, I)")
    source_scale: float = Field(5.0, gt=0, description="render scale of the Gaussian source images")


class Model(Section):
    hidden: list[int] = Field(default_factory=lambda: [2048, 512, 256], min_length=1,
                              description="hidden widths of the ConcatMLP (input and output are image_size²)")


class Training(Section):
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-6, gt=0, le=1)
    loss: LossKind = Field("buggy_x0", description="buggy_x0: the original; correct: x_t fed and used")
    observe_every: int = Field(50, ge=1, description="iterations between batches shown to the data probes")
    checkpoints: list[int] = Field(default_factory=lambda: [5, 15, 50, 100, 250, 500, 1000],
                                   description="iterations at which images are generated (0 and the last are added)")


class Sampling(Section):
    time_points: int = Field(100, ge=2, description="Euler over this many equal time points from 0 to 1")
    frozen: bool = Field(False, description="the rewrite's sampler: the step's result goes to a new variable")
    images: int = Field(4, ge=1, le=64, description="images generated at each checkpoint, each from its own start")
    n_samples: int = Field(16, ge=2, description="images generated at the end for the probes")


register(Recipe(
    name="flattened_flow",
    description="flow matching on 2D distributions rendered into flattened 64×64 images (the failed project)",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run="gendiag.recipes.flattened.loop:run",
))

"""Case sections shared by several recipes: 2D point clouds for the velocity-MLP recipes (flow matching and
DDPM on points), and data that is either images or 2D points (GAN and VAE)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gendiag.config import DistributionName, DistributionParams, Section


class PointsData(Section):
    """A 2D distribution, with points held out for W2."""

    distribution: DistributionName = Field("moons", description="a name from gendiag.data.DISTRIBUTIONS")
    params: DistributionParams = Field(default_factory=dict, description="parameters of the distribution")
    heldout: int = Field(2000, ge=100, description="held-out points for W2")


class PointsModel(Section):
    """The velocity (or noise) MLP on 2D points: reference_models.nets.VelocityMLP."""

    hidden: int = Field(256, ge=8)
    depth: int = Field(4, ge=1)
    time_dim: int = Field(64, ge=2)


class PointsTraining(Section):
    """Adam on batches of 2D points, the learning rate constant or falling on a cosine."""

    steps: int = Field(3000, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-3, gt=0, le=1)
    lr_decay: Literal["none", "cosine"] = Field("none", description="cosine: the lr falls to 0 by the last step")
    observe_every: int = Field(50, ge=1, description="steps between batches shown to the data probes")


class ImagesOrPointsData(Section):
    """Digit images or a 2D distribution; a subclass narrows `dataset` (declared here so that it is validated
    before `params`, whose check needs it)."""

    dataset: str
    params: DistributionParams = Field(default_factory=dict, description="parameters of the 2D distribution")
    train_size: int | None = Field(None, ge=100, description="training samples (images: None = all but the held-out)")
    heldout: int = Field(2000, ge=100, description="held-out samples (the Fréchet distance, W2, the latent batch)")

"""The ddpm_images recipe's case sections (its loop: gendiag/recipes/ddpm_images.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gendiag.config import Section
from gendiag.recipes import Recipe, register


class Data(Section):
    dataset: Literal["digits", "mnist"] = "digits"
    test_fraction: float = Field(0.2, gt=0, lt=1, description="images held out for the Fréchet distance")


class Model(Section):
    widths: list[int] = Field(default_factory=lambda: [16, 32], min_length=1, description="channels per level")
    time_dim: int = Field(64, ge=2)


class Training(Section):
    steps: int = Field(4000, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(2e-3, gt=0, le=1)
    lr_decay: Literal["none", "cosine"] = "cosine"
    ema: float = Field(0.999, ge=0, lt=1, description="decay of the weights' moving average used to sample (0: off)")
    schedule: Literal["linear", "cosine"] = "cosine"
    diffusion_steps: int = Field(1000, ge=2)
    observe_every: int = Field(100, ge=1, description="steps between batches shown to the data probes")


class Sampling(Section):
    method: Literal["ddim", "ancestral"] = "ddim"
    ddim_steps: int = Field(100, ge=1)
    n_samples: int = Field(1000, ge=10)
    batch: int = Field(500, ge=1, description="samples drawn per sampler call")


register(Recipe(
    name="ddpm_images",
    description="DDPM on digit images (UNet, cosine schedule, EMA, DDIM or ancestral sampling)",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run="gendiag.recipes.ddpm_images:run",
))

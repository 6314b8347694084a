"""The vae recipe's case sections and their check (its loop: gendiag/recipes/vae.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gendiag.config import Case, CaseError, Section, distribution_name
from gendiag.recipes import Recipe, register
from gendiag.recipes.schemas.common import ImagesOrPointsData

DatasetName = distribution_name("mnist")


class Data(ImagesOrPointsData):
    dataset: DatasetName = Field("mnist", description="'mnist', or a 2D distribution name from gendiag.data.DISTRIBUTIONS")


class Model(Section):
    arch: Literal["conv", "mlp"] = "conv"
    latent: int = Field(20, ge=1)
    width: int = Field(32, ge=4, description="conv VAE base channel count")
    hidden: int = Field(256, ge=4)
    depth: int = Field(2, ge=1, description="MLP VAE hidden layers")
    decoder_std: float = Field(0.1, gt=0, description="MLP VAE Gaussian decoder's fixed standard deviation")


class Training(Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0, le=1)
    kl_weight: float = Field(1.0, ge=0, description="final weight β of the KL term")
    kl_warmup_epochs: float = Field(0.0, ge=0, description="epochs over which β rises linearly from 0 (0: none)")
    observe_every: int = Field(100, ge=1, description="steps between latent observations of the fixed batch")
    latent_batch: int = Field(512, ge=16, description="held-out samples encoded at each latent observation")


class Sampling(Section):
    n_samples: int = Field(1000, ge=100)


def check(case: Case) -> None:
    """Settings that do not go together across sections, refused when the case is loaded."""
    if case.model.arch == "conv" and case.data.dataset != "mnist":
        raise CaseError(f"{case.path}: data.dataset: the conv VAE needs 28×28 images ('mnist'), "
                        f"got {case.data.dataset!r}")


register(Recipe(
    name="vae",
    description="VAEs: the conv VAE on MNIST-10k (BCE + β·KL, KL annealing) and an MLP VAE on 2D points",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run="gendiag.recipes.vae:run",
    check=check,
))

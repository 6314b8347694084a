"""The pixelcnn recipe's case sections and their check (its loop: gendiag/recipes/pixelcnn.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gendiag.config import Case, CaseError, Section
from gendiag.recipes import Recipe, register


class Data(Section):
    dataset: Literal["digits", "mnist"] = "digits"
    threshold: float = Field(0.5, gt=0, lt=1, description="a pixel is 1 where its intensity exceeds this")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="images held out for the likelihood")


class Model(Section):
    hidden: int = Field(64, ge=1)
    layers: int = Field(5, ge=0, description="residual mask-B convolutions after the mask-A one")
    first_kernel: int = Field(5, ge=1, description="odd size of the mask-A kernel")
    kernel: int = Field(3, ge=1, description="odd size of the mask-B kernels")


class Training(Section):
    steps: int = Field(500, ge=1, description="about 45 epochs of the 1,437 training digits; longer overfits")
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0, le=1)
    observe_every: int = Field(100, ge=1, description="steps between batches shown to the data probes")
    eval_every: int = Field(100, ge=1, description="steps between held-out bits-per-dim measurements")


class Sampling(Section):
    n_samples: int = Field(1000, ge=10)


def check(case: Case) -> None:
    """Kernel sizes a masked convolution cannot centre, refused when the case is loaded."""
    for name in ("first_kernel", "kernel"):
        if getattr(case.model, name) % 2 == 0:
            raise CaseError(f"{case.path}: model.{name} must be odd, got {getattr(case.model, name)}")


register(Recipe(
    name="pixelcnn",
    description="PixelCNN on binarized digits: exact bits per pixel against a per-pixel Bernoulli baseline",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run="gendiag.recipes.pixelcnn:run",
    check=check,
))

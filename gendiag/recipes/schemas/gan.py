"""The gan recipe's case sections and their check (its loop: gendiag/recipes/gan.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gendiag.config import Case, CaseError, Section
from gendiag.recipes import Recipe, register
from gendiag.recipes.schemas.common import ImagesOrPointsData

POINT_SETS = ("ring", "grid")


class Data(ImagesOrPointsData):
    dataset: Literal["ring", "grid", "mnist", "digits"] = "ring"


class Model(Section):
    arch: Literal["mlp", "dcgan"] = "mlp"
    z_dim: int = Field(100, ge=1)
    g_hidden: int = Field(256, ge=4, description="first generator width (doubles per layer when g_widen)")
    g_depth: int = Field(3, ge=1)
    g_widen: bool = True
    g_batch_norm: bool = False
    g_activation: Literal["leaky_relu", "relu"] = Field("leaky_relu", description="the MLP generator's hidden "
                                                        "activation: LeakyReLU(0.2), or ReLU (PacGAN's 2D generator)")
    d_hidden: int = Field(1024, ge=4, description="first discriminator width (halves per layer when d_narrow)")
    d_depth: int = Field(3, ge=1)
    d_narrow: bool = True
    dropout: float = Field(0.3, ge=0, lt=1)
    width: int = Field(64, ge=4, description="DCGAN base channel count")
    conditional: bool = Field(False, description="condition both networks on the class label (images)")
    spectral_norm: bool = False
    pack: int = Field(1, ge=1, le=16, description="PacGAN packing degree (1: none)")
    pack_after: int = Field(0, ge=0, description="MLP discriminator layers that see each sample on its own (shared "
                                                 "weights) before packing joins them (0: PacGAN packs the raw inputs)")


class Training(Section):
    steps: int = Field(3000, ge=1, description="rounds of d_steps D updates then g_steps G updates")
    batch_size: int = Field(128, ge=2, description="samples per batch (a multiple of pack)")
    loss: Literal["bce", "wgan-gp"] = "bce"
    lr_g: float = Field(2e-4, gt=0, le=1)
    lr_d: float = Field(2e-4, gt=0, le=1)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    real_label: float = Field(0.9, gt=0, le=1, description="BCE target for real samples (0.9: one-sided smoothing)")
    d_steps: int = Field(1, ge=1, description="discriminator (critic) updates per round")
    g_steps: int = Field(2, ge=1, description="generator updates per round")
    gp_lambda: float = Field(10.0, ge=0)
    r1_gamma: float = Field(0.0, ge=0, description="weight γ of the R1 penalty γ/2·E‖∇D(real)‖² added to D's loss "
                                                   "(0: none); it stops D from saturating")
    lr_decay_from: float = Field(1.0, ge=0, le=1, description="share of the steps after which both learning rates "
                                                               "fall linearly to lr_decay_to of their start (1: none)")
    lr_decay_to: float = Field(1.0, ge=0, le=1, description="fraction of the starting learning rates at the last step")
    g_ema: float = Field(0.0, ge=0, lt=1, description="decay of an exponential moving average of the generator's "
                                                     "weights that draws the samples (0: the generator itself)")
    sample_every: int = Field(250, ge=1, description="steps between sample sets shown to the Monitor")
    observe_every: int = Field(50, ge=1, description="steps between data batches shown to the Monitor")


class Sampling(Section):
    n_samples: int = Field(2500, ge=100, description="samples for the final metrics (PacGAN: 2500; images: 1000)")


def check(case: Case) -> None:
    """Settings that do not go together across sections, refused when the case is loaded."""
    model_cfg, data_cfg = case.model, case.data
    if case.training.batch_size % model_cfg.pack:
        raise CaseError(f"{case.path}: training.batch_size: must be a multiple of model.pack={model_cfg.pack}, "
                        f"got {case.training.batch_size}")
    if model_cfg.arch == "dcgan" and data_cfg.dataset != "mnist":
        raise CaseError(f"{case.path}: model.arch: dcgan needs 28×28 images (data.dataset: mnist), "
                        f"got dataset {data_cfg.dataset!r}")
    if model_cfg.conditional and data_cfg.dataset in POINT_SETS:
        raise CaseError(f"{case.path}: model.conditional: needs labelled images (mnist or digits), "
                        f"got dataset {data_cfg.dataset!r}")
    if model_cfg.pack_after > model_cfg.d_depth or (model_cfg.pack_after and model_cfg.arch != "mlp"):
        raise CaseError(f"{case.path}: model.pack_after: must be at most model.d_depth={model_cfg.d_depth} and needs "
                        f"the mlp arch, got {model_cfg.pack_after} with arch {model_cfg.arch!r}")
    if model_cfg.conditional and model_cfg.arch != "mlp":
        raise CaseError(f"{case.path}: model.conditional: only the mlp arch is conditional, got {model_cfg.arch!r}")


register(Recipe(
    name="gan",
    description="GANs (MLP, conditional, DCGAN; BCE or WGAN-GP; spectral norm, PacGAN packing) on 2D modes or digits",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run="gendiag.recipes.gan:run",
    check=check,
))

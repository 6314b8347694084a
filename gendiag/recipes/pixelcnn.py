"""PixelCNN on binarized digit images: exact negative log-likelihood in bits per pixel on held-out images beside a
per-pixel Bernoulli baseline (which it must beat: the gap is what it learned about dependencies between pixels),
and samples drawn pixel by pixel, judged by the project's digit classifier."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from gendiag.config import Case, Section
from gendiag.metrics.classifier import load_classifier
from gendiag.recipes import Recipe, register
from gendiag.recipes.image_eval import compare_images, image_grid, load_split
from gendiag.runner import RunContext
from reference_models.pixelcnn import PixelCNN, bernoulli_baseline_bits_per_dim, nll_bits_per_dim, sample


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


def run(case: Case, ctx: RunContext) -> dict[str, Any]:
    data_cfg, model_cfg, train_cfg = case.data, case.model, case.training
    for name in ("first_kernel", "kernel"):
        if getattr(model_cfg, name) % 2 == 0:
            raise ValueError(f"{case.path}: model.{name} must be odd, got {getattr(model_cfg, name)}")
    split = load_split(data_cfg.dataset, data_cfg.test_fraction, None, ctx.generator(0))
    train = (split.train > data_cfg.threshold).float()
    test = (split.heldout > data_cfg.threshold).float()
    height, width = train.shape[-2:]
    data_gen, eval_gen = ctx.generator(1), ctx.generator(3)
    model = PixelCNN(hidden=model_cfg.hidden, layers=model_cfg.layers, first_kernel=model_cfg.first_kernel,
                     kernel=model_cfg.kernel)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    baseline = bernoulli_baseline_bits_per_dim(train, test)

    mon = ctx.start_monitor("autoregressive")
    mon.watch(model, name="pixelcnn", x_arg=0, t_arg=None)
    first = ctx.track({"pixelcnn": model}, {"optimizer": optimizer}, {"data": data_gen}) + 1
    loss = float("nan")
    for step in range(first, train_cfg.steps + 1):
        with mon.phase("data"):
            x = train[torch.randint(len(train), (train_cfg.batch_size,), generator=data_gen)]
        with mon.phase("step"):
            logits = model(x)
            per_sample = nll_bits_per_dim(logits, x)
            optimizer.zero_grad(set_to_none=True)
            per_sample.mean().backward()
            optimizer.step()
        if step == first or step % train_cfg.observe_every == 0:
            mon.observe_data(x, role="data")
        loss = per_sample.mean().item()
        scalars = {"test/bits_per_dim": _bits(model, test)} if step % train_cfg.eval_every == 0 else {}
        per_position = F.binary_cross_entropy_with_logits(logits.detach(), x, reduction="none")  # nats
        mon.step(step, loss, per_sample_loss=per_sample.detach(), per_position_loss=per_position, **scalars)
        ctx.progress(step, {"loss": loss})

    model.eval()
    test_bits, train_bits = _bits(model, test), _bits(model, train)
    with mon.sampling():
        samples = sample(model, case.sampling.n_samples, height, width, generator=eval_gen)
    mon.observe_samples(samples)
    comparison = compare_images(samples, split, load_classifier(data_cfg.dataset), eval_gen)
    mon.add_section(
        "Likelihood and samples",
        text=(f"Held-out negative log-likelihood {test_bits:.4f} bits per pixel (training images {train_bits:.4f}); "
              f"independent per-pixel Bernoullis fitted on the training images give {baseline:.4f}, so the "
              f"PixelCNN {'beats' if test_bits < baseline else 'does not beat'} the baseline by "
              f"{baseline - test_bits:.4f} bits per pixel.\n\n" + comparison.text()),
        figures=[mon.save_figure(image_grid([("binarized training images", train), ("generated", samples)]),
                                 "samples")],
    )
    return {"test_bits_per_dim": test_bits, "train_bits_per_dim": train_bits, "baseline_bits_per_dim": baseline,
            "beats_baseline": test_bits < baseline, **comparison.results(), "final_loss": loss}


def _bits(model: PixelCNN, images: torch.Tensor) -> float:
    """Mean exact bits per pixel over `images`, without gradients, in eval mode, restoring the mode after."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        bits = float(nll_bits_per_dim(model(images), images).mean())
    model.train(was_training)
    return bits


register(Recipe(
    name="pixelcnn",
    description="PixelCNN on binarized digits: exact bits per pixel against a per-pixel Bernoulli baseline",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run=run,
))

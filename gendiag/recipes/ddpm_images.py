"""DDPM on small digit images: a UNet noise predictor, the cosine schedule over 1,000 steps, L_simple, an
exponential moving average of the weights, and DDIM (or ancestral) sampling; the samples are judged by the project's
digit classifier (all 10 classes, none above 20%) and by the Fréchet distance in its feature space."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gendiag.config import Case
from gendiag.recipes.ddpm_step import ddpm_step
from gendiag.recipes.schedules import learning_rate
from gendiag.metrics.classifier import load_classifier
from gendiag.recipes.image_eval import compare_images, image_grid, load_split
from gendiag.recipes.schemas.ddpm_images import Sampling
from gendiag.runner import RunContext
from reference_models.ddpm import Schedule, ancestral_sample, ddim_sample
from reference_models.unet import UNet


def run(case: Case, ctx: RunContext) -> dict[str, Any]:
    data_cfg, train_cfg, sample_cfg = case.data, case.training, case.sampling
    split = load_split(data_cfg.dataset, data_cfg.test_fraction, None, ctx.generator(0))
    train = split.train * 2 - 1
    shape = tuple(train.shape[1:])
    schedule = Schedule.make(train_cfg.schedule, train_cfg.diffusion_steps)
    data_gen, noise_gen, eval_gen = ctx.generator(1), ctx.generator(2), ctx.generator(3)
    model = UNet(channels=shape[0], widths=tuple(case.model.widths), time_dim=case.model.time_dim)
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(train_cfg.ema)) if train_cfg.ema else None
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)

    mon = ctx.start_monitor("diffusion", schedule=schedule.alphas_cumprod.float(), image_shape=shape,
                            source=lambda n, generator=None: torch.randn(n, *shape, generator=generator))
    mon.watch(model, name="unet", x_arg=0, t_arg=1)
    modules = {"unet": model, **({"ema": average} if average is not None else {})}
    first = ctx.track(modules, {"optimizer": optimizer}, {"data": data_gen, "noise": noise_gen}) + 1
    loss = float("nan")
    for step in range(first, train_cfg.steps + 1):
        lr = learning_rate(train_cfg.lr, train_cfg.lr_decay, step, train_cfg.steps)
        with mon.phase("data"):
            x0 = train[torch.randint(len(train), (train_cfg.batch_size,), generator=data_gen)]
        with mon.phase("step"):
            batch = ddpm_step(model, optimizer, x0, schedule, lr, noise_gen, average)
        if step == first or step % train_cfg.observe_every == 0:
            mon.observe_data(x0, role="data")
            mon.observe_data(torch.randn(x0.shape, generator=noise_gen), role="source")
        loss = batch.loss.item()
        mon.step(step, loss, t=batch.t.float(), per_sample_loss=batch.per_sample_loss, lr=lr)
        ctx.progress(step, {"loss": loss})

    if average is not None:
        model.load_state_dict(average.module.state_dict())
    model.eval()
    with mon.sampling():
        samples = torch.cat([_sample(model, schedule, torch.randn(size, *shape, generator=eval_gen), sample_cfg,
                                     eval_gen)
                             for size in _chunks(sample_cfg.n_samples, sample_cfg.batch)])
    mon.observe_samples(samples)  # in [-1, 1], the space of the observed data batches
    samples = ((samples + 1) / 2).clamp(0, 1)
    comparison = compare_images(samples, split, load_classifier(data_cfg.dataset), eval_gen)
    figure = image_grid([("training images", split.train), ("generated", samples)])
    mon.add_section("Samples and the digit classifier", text=comparison.text(),
                    figures=[mon.save_figure(figure, "samples")])
    return {**comparison.results(), "bar_met": comparison.met, "final_loss": loss}


def _sample(model: torch.nn.Module, schedule: Schedule, start: torch.Tensor, cfg: Sampling,
            generator: torch.Generator) -> torch.Tensor:
    if cfg.method == "ddim":
        return ddim_sample(model, schedule, start, steps=min(cfg.ddim_steps, schedule.steps), clip=1.0)
    return ancestral_sample(model, schedule, start, generator=generator, clip=1.0)


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


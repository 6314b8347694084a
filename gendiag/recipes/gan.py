"""GANs on 2D mixtures with known modes (ring, grid) and on digit images (MNIST-10k, 8×8 digits).

The plain loop: `d_steps` discriminator updates (BCE with smoothed real labels, or the WGAN critic loss with a
gradient penalty; either optionally with an R1 penalty on the real samples), then `g_steps` generator updates
(non-saturating BCE or −E[D(G(z))]); the discriminator's outputs on the last real and fake batches, both losses and
both networks' gradient norms (read right after each backward) go to `Monitor.step`; both learning rates can fall
linearly over the last part of the run, and the samples can come from an exponential moving average of the
generator's weights (smoother than the last iterate). Samples are shown to the Monitor at intervals (the mode
timeline) and at the end; the headline results are PacGAN's known-mode metrics for 2D data, class coverage and the
Fréchet distance for images."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gendiag.config import Case
from gendiag.data import make_distribution
from gendiag.figures import legend
from gendiag.metrics import mode_metrics
from gendiag.metrics.classifier import load_classifier
from gendiag.recipes.image_eval import IMAGE_SETS, compare_images, image_grid, load_split
from gendiag.recipes.schedules import linear_decay_factor
from gendiag.recipes.schemas.gan import Model
from gendiag.runner import RunContext
from reference_models.gan import (DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator,
                                  discriminator_loss, frozen, generator_loss, grad_norm, gradient_penalty,
                                  r1_penalty)

def run(case: Case, ctx: RunContext) -> dict[str, Any]:
    data_cfg, model_cfg, train_cfg = case.data, case.model, case.training
    data_gen, noise_gen, sample_gen = ctx.generator(1), ctx.generator(2), ctx.generator(3)
    images = data_cfg.dataset in IMAGE_SETS
    if images:
        split = load_split(data_cfg.dataset, data_cfg.heldout, data_cfg.train_size, ctx.generator(4))
        train = split.train * 2 - 1  # Tanh generator: data scaled to [-1, 1]
        shape = tuple(train.shape[1:])
        classifier = load_classifier(data_cfg.dataset)
        mon = ctx.start_monitor("gan", classifier=classifier, reference=split.heldout)
    else:
        distribution = make_distribution(data_cfg.dataset, **data_cfg.params)
        shape = (2,)
        mon = ctx.start_monitor("gan", modes=distribution.modes, mode_std=distribution.mode_std,
                                reference=distribution.sample(2000, generator=ctx.generator(4)))
    generator, discriminator = _networks(model_cfg, shape, images, critic=train_cfg.loss == "wgan-gp")
    betas = (train_cfg.beta1, train_cfg.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=train_cfg.lr_g, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=train_cfg.lr_d, betas=betas)
    # copied before `watch`, so the Monitor's hooks stay on the trained generator only
    averaged = (AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(train_cfg.g_ema), use_buffers=True)
                if train_cfg.g_ema > 0 else None)
    sampler = averaged.module if averaged is not None else generator
    mon.watch(generator, name="generator", x_arg=0, t_arg=None)
    mon.watch(discriminator, name="discriminator", x_arg=0, t_arg=None)
    done = ctx.track(modules={"generator": generator, "discriminator": discriminator,
                              **({"generator_ema": averaged} if averaged is not None else {})},
                     optimizers={"g": opt_g, "d": opt_d},
                     generators={"data": data_gen, "noise": noise_gen, "sample": sample_gen})

    def real_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        if not images:
            return distribution.sample(train_cfg.batch_size, generator=data_gen), None
        index = torch.randint(0, len(train), (train_cfg.batch_size,), generator=data_gen)
        return train[index].reshape(-1, *shape), split.train_labels[index] if model_cfg.conditional else None

    def fake_batch(n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        labels = torch.randint(0, 10, (n,), generator=noise_gen) if model_cfg.conditional else None
        return generator(torch.randn(n, model_cfg.z_dim, generator=noise_gen), labels), labels

    d_output = "critic" if train_cfg.loss == "wgan-gp" else "logit"
    final: dict[str, float] = {}
    for step in range(done + 1, train_cfg.steps + 1):
        decay = linear_decay_factor(step, train_cfg.steps, train_cfg.lr_decay_from, train_cfg.lr_decay_to)
        for optimizer, base in ((opt_g, train_cfg.lr_g), (opt_d, train_cfg.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = base * decay
        with mon.phase("step"):
            for _ in range(train_cfg.d_steps):
                real, real_labels = real_batch()
                with torch.no_grad():  # D's step needs no graph through G
                    fake, fake_labels = fake_batch(train_cfg.batch_size)
                if train_cfg.r1_gamma > 0:
                    real.requires_grad_(True)
                d_real, d_fake = discriminator(real, real_labels), discriminator(fake, fake_labels)
                loss_d = discriminator_loss(train_cfg.loss, d_real, d_fake, train_cfg.real_label)
                if train_cfg.r1_gamma > 0:
                    loss_d = loss_d + train_cfg.r1_gamma / 2 * r1_penalty(d_real, real, model_cfg.pack)
                if train_cfg.loss == "wgan-gp":
                    loss_d = loss_d + train_cfg.gp_lambda * gradient_penalty(discriminator, real, fake, noise_gen,
                                                                             real_labels)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                norm_d = grad_norm(discriminator)
                opt_d.step()
            for _ in range(train_cfg.g_steps):
                fake, fake_labels = fake_batch(train_cfg.batch_size)
                opt_g.zero_grad(set_to_none=True)
                with frozen(discriminator):
                    loss_g = generator_loss(train_cfg.loss, discriminator(fake, fake_labels))
                    loss_g.backward()
                norm_g = grad_norm(generator)
                opt_g.step()
                if averaged is not None:
                    averaged.update_parameters(generator)
        if step == 1 or step % train_cfg.observe_every == 0:
            seen = real.detach()
            mon.observe_data(_to_unit(seen) if images else seen, role="data")
        final = {"loss_d": loss_d.item(), "loss_g": loss_g.item()}
        mon.step(step, loss_d=final["loss_d"], loss_g=final["loss_g"], d_real=d_real.detach(),
                 d_fake=d_fake.detach(), d_output=d_output, grad_norm_d=norm_d, grad_norm_g=norm_g)
        if step % train_cfg.sample_every == 0 and step != train_cfg.steps:
            mon.observe_samples(_samples(sampler, model_cfg, case.sampling.n_samples, sample_gen, images), step)
        ctx.progress(step, final)

    samples = _samples(sampler, model_cfg, case.sampling.n_samples, sample_gen, images)
    mon.observe_samples(samples)
    if images:
        comparison = compare_images(samples, split, classifier, sample_gen)
        figure = image_grid([("training images", split.train[:100]), ("generated", samples[:100])])
        mon.add_section("Samples against data", text=comparison.text(),
                        figures=[mon.save_figure(figure, "samples_vs_data")])
        return {**comparison.results(), **final}
    metrics = mode_metrics(samples, distribution.modes, distribution.mode_std)
    results = {"modes_captured": metrics.modes_captured, "n_modes": metrics.n_modes,
               "high_quality_share": metrics.high_quality_share, "reverse_kl": metrics.reverse_kl}
    figure = _modes_figure(samples, distribution.modes, metrics.captured.tolist(), results)
    mon.add_section(
        "Samples against the modes",
        text=(f"{len(samples)} samples: {metrics.modes_captured} of {metrics.n_modes} modes captured (a high-quality "
              f"sample within 3 standard deviations), {metrics.high_quality_share:.1%} of samples high-quality, "
              f"reverse KL of the mode histogram to uniform {metrics.reverse_kl:.3f}. Dropped modes: "
              f"{metrics.dropped_modes or 'none'}."),
        figures=[mon.save_figure(figure, "samples_vs_modes")],
    )
    return {**results, **final}


def _networks(cfg: Model, shape: tuple[int, ...], images: bool,
              critic: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The generator and discriminator; a WGAN-GP critic gets no batch norm (its penalty is per sample)."""
    if cfg.arch == "dcgan":
        return (DCGANGenerator(z_dim=cfg.z_dim, width=cfg.width),
                DCGANDiscriminator(width=cfg.width, pack=cfg.pack, spectral_norm=cfg.spectral_norm,
                                   batch_norm=not critic))
    dim = int(torch.tensor(shape).prod())
    classes = 10 if cfg.conditional else 0
    generator = MLPGenerator(z_dim=cfg.z_dim, out_dim=dim, hidden=cfg.g_hidden, depth=cfg.g_depth,
                             widen=cfg.g_widen, output="tanh" if images else "linear", n_classes=classes,
                             batch_norm=cfg.g_batch_norm, activation=cfg.g_activation)
    discriminator = MLPDiscriminator(in_dim=dim, hidden=cfg.d_hidden, depth=cfg.d_depth, narrow=cfg.d_narrow,
                                     dropout=cfg.dropout, n_classes=classes, pack=cfg.pack,
                                     spectral_norm=cfg.spectral_norm, pack_after=cfg.pack_after)
    return generator, discriminator


def _samples(generator: torch.nn.Module, cfg: Model, n: int, noise: torch.Generator, images: bool) -> torch.Tensor:
    """`n` samples in eval mode (training mode restored): 2D points, or images in [0, 1] shaped (n, 1, S, S);
    a conditional generator gets the labels 0..9 in turn."""
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            labels = torch.arange(n) % 10 if cfg.conditional else None
            out = generator(torch.randn(n, cfg.z_dim, generator=noise), labels)
    finally:
        generator.train(was_training)
    if not images:
        return out
    side = int(round(out[0].numel() ** 0.5))
    return _to_unit(out.reshape(n, 1, side, side))


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) / 2).clamp(0, 1)


def _modes_figure(samples: torch.Tensor, modes: torch.Tensor, captured: list[bool],
                  results: dict[str, float]) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:orange", label="generated")
    colours = ["tab:green" if hit else "tab:red" for hit in captured]
    axis.scatter(modes[:, 0], modes[:, 1], s=60, marker="x", c=colours, label="modes (red: dropped)")
    axis.set_title(f"{results['modes_captured']}/{results['n_modes']} modes, "
                   f"{results['high_quality_share']:.0%} high quality, reverse KL {results['reverse_kl']:.3f}")
    axis.set_aspect("equal")
    legend(axis, loc="upper right", fontsize=8)
    figure.tight_layout()
    return figure

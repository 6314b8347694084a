"""VAEs: the convolutional VAE on MNIST-10k, and an MLP VAE on 2D point clouds.

The plain loop: shuffle the training set each epoch, encode, draw z = μ + σ·ε, decode, minimize the reconstruction
term plus β·KL where β rises linearly from 0 to `kl_weight` over the first `kl_warmup_epochs` epochs (0: no
annealing); each step hands loss, reconstruction and KL to `Monitor.step`, and every `observe_every` steps (and at
each epoch's end) the posterior of a fixed held-out batch goes to `Monitor.observe_latents`. At the end, samples from
the prior are decoded: class coverage and the Fréchet distance for images, W2 against held-out data for points."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from gendiag.config import Case, CaseError, DistributionParams, Section, distribution_name
from gendiag.data import make_distribution
from gendiag.probes.vae_health import ACTIVE_VARIANCE, activity
from gendiag.recipes import Recipe, register
from gendiag.metrics.classifier import load_classifier
from gendiag.recipes.image_eval import compare_images, image_grid, load_split
from gendiag.recipes.points_eval import compare_to_data, scatter_panels
from gendiag.runner import RunContext
from reference_models.vae import ConvVAE, MLPVAE, annealed_kl_weight, vae_loss


DatasetName = distribution_name("mnist")


class Data(Section):
    dataset: DatasetName = Field("mnist", description="'mnist', or a 2D distribution name from gendiag.data.DISTRIBUTIONS")
    params: DistributionParams = Field(default_factory=dict, description="parameters of the 2D distribution")
    train_size: int | None = Field(None, ge=100, description="training samples (images: None = all but held-out)")
    heldout: int = Field(2000, ge=100, description="held-out samples (the latent batch is drawn from them)")


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


def _check(case: Case) -> None:
    """Settings that do not go together across sections, refused when the case is loaded."""
    if case.model.arch == "conv" and case.data.dataset != "mnist":
        raise CaseError(f"{case.path}: data.dataset: the conv VAE needs 28×28 images ('mnist'), "
                        f"got {case.data.dataset!r}")


def run(case: Case, ctx: RunContext) -> dict[str, Any]:
    data_cfg, model_cfg, train_cfg = case.data, case.model, case.training
    noise_gen, sample_gen = ctx.generator(2), ctx.generator(3)
    images = model_cfg.arch == "conv"
    if images:
        split = load_split("mnist", data_cfg.heldout, data_cfg.train_size, ctx.generator(4))
        train, heldout = split.train, split.heldout
        classifier = load_classifier("mnist")
        model: torch.nn.Module = ConvVAE(latent=model_cfg.latent, width=model_cfg.width, hidden=model_cfg.hidden)
        mon = ctx.start_monitor("vae", classifier=classifier, reference=heldout)
    else:
        distribution = make_distribution(data_cfg.dataset, **data_cfg.params)
        train = distribution.sample(data_cfg.train_size or 20_000, generator=ctx.generator(4))
        heldout = distribution.sample(data_cfg.heldout, generator=ctx.generator(4))
        model = MLPVAE(dim=2, latent=model_cfg.latent, hidden=model_cfg.hidden, depth=model_cfg.depth,
                       decoder_std=model_cfg.decoder_std)
        mon = ctx.start_monitor("vae", reference=heldout)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    mon.watch(model, name="vae", x_arg=0, t_arg=None)
    done = ctx.track(modules={"vae": model}, optimizers={"adam": optimizer},
                     generators={"noise": noise_gen, "sample": sample_gen})
    latent_batch = heldout[:train_cfg.latent_batch]
    per_epoch = -(-len(train) // train_cfg.batch_size)

    def observe_latents(step: int) -> None:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            mu, logvar = model.encode(latent_batch)
        model.train(was_training)
        mon.observe_latents(mu, logvar, step)

    final: dict[str, float] = {}
    for epoch in range(done // per_epoch, train_cfg.epochs):
        order = torch.randperm(len(train), generator=ctx.generator(100 + epoch))  # one stream per epoch: exact resume
        for batch, index in enumerate(order.split(train_cfg.batch_size)):
            step = epoch * per_epoch + batch + 1
            if step <= done:
                continue
            x = train[index]
            beta = annealed_kl_weight(step / per_epoch, train_cfg.kl_warmup_epochs, train_cfg.kl_weight)
            with mon.phase("step"):
                terms = vae_loss(model, x, model(x, generator=noise_gen), kl_weight=beta)
                optimizer.zero_grad(set_to_none=True)
                terms.loss.backward()
                optimizer.step()
            final = {"loss": terms.loss.item(), "recon": terms.recon.item(), "kl": terms.kl.item()}
            if step == 1 or step % train_cfg.observe_every == 0:
                mon.observe_data(x, role="data")
            mon.step(step, final["loss"], recon=final["recon"], kl=final["kl"], kl_weight=beta)
            if step % train_cfg.observe_every == 0 or step % per_epoch == 0:
                observe_latents(step)
            ctx.progress(step, final)

    model.eval()
    with torch.no_grad():
        decoded = model.decode(torch.randn(case.sampling.n_samples, model_cfg.latent, generator=sample_gen))
        mu, logvar = model.encode(latent_batch)
        recon = model.decode(mu)
    samples = torch.sigmoid(decoded) if images else decoded
    mon.observe_samples(samples)
    variance, kl = activity(mu, logvar)
    results = {**final, "active_units": int((variance > ACTIVE_VARIANCE).sum()), "latent": model_cfg.latent,
               "kl_total_heldout": float(kl.sum())}
    if images:
        comparison = compare_images(samples, split, classifier, sample_gen)
        figure = image_grid([("held-out images", latent_batch[:50]), ("reconstructions", torch.sigmoid(recon[:50])),
                             ("samples from the prior", samples[:50])])
        mon.add_section("Reconstructions and samples", text=comparison.text(),
                        figures=[mon.save_figure(figure, "samples_vs_data")])
        return {**results, **comparison.results()}
    comparison = compare_to_data(samples, distribution, len(samples), sample_gen)
    figure = scatter_panels([("held-out data", comparison.heldout), ("samples from the prior", samples),
                             ("reconstructions", recon)])
    mon.add_section("Samples against data", text=comparison.text("samples from the prior"),
                    figures=[mon.save_figure(figure, "samples_vs_data")])
    return {**results, "w2": comparison.w2, "w2_floor": comparison.floor, "w2_ratio": comparison.ratio}


register(Recipe(
    name="vae",
    description="VAEs: the conv VAE on MNIST-10k (BCE + β·KL, KL annealing) and an MLP VAE on 2D points",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run=run,
    check=_check,
))

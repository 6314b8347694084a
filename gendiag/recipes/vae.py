"""VAEs: the convolutional VAE on MNIST-10k, and an MLP VAE on 2D point clouds.

The plain loop: shuffle the training set each epoch, encode, draw z = μ + σ·ε, decode, minimize the reconstruction
term plus β·KL where β rises linearly from 0 to `kl_weight` over the first `kl_warmup_epochs` epochs (0: no
annealing); each step hands loss, reconstruction and KL to `Monitor.step`, and every `observe_every` steps (and at
each epoch's end) the posterior of a fixed held-out batch goes to `Monitor.observe_latents`. At the end, samples from
the prior are decoded: class coverage and the Fréchet distance for images, W2 against held-out data for points."""

from __future__ import annotations

from typing import Any

import torch

from gendiag.config import Case
from gendiag.data import make_distribution
from gendiag.quantities.vae_health import activity
from gendiag.rules.thresholds import VAE_ACTIVE_VARIANCE
from gendiag.metrics.classifier import load_classifier
from gendiag.recipes.image_eval import compare_images, image_grid, load_split
from gendiag.recipes.points_eval import compare_to_data, scatter_panels
from gendiag.runner import RunContext
from reference_models.vae import ConvVAE, MLPVAE, annealed_kl_weight, vae_loss


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
    results = {**final, "active_units": int((variance > VAE_ACTIVE_VARIANCE).sum()), "latent": model_cfg.latent,
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

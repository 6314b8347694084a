"""PixelCNN on binarized digit images: exact negative log-likelihood in bits per pixel on held-out images beside a
per-pixel Bernoulli baseline (which it must beat: the gap is what it learned about dependencies between pixels),
and samples drawn pixel by pixel, judged by the project's digit classifier."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gendiag.config import Case
from gendiag.metrics.classifier import load_classifier
from gendiag.recipes.image_eval import compare_images, image_grid, load_split
from gendiag.runner import RunContext
from reference_models.pixelcnn import PixelCNN, bernoulli_baseline_bits_per_dim, nll_bits_per_dim, sample


def run(case: Case, ctx: RunContext) -> dict[str, Any]:
    data_cfg, model_cfg, train_cfg = case.data, case.model, case.training
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


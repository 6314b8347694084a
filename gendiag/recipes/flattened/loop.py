"""The original's training loop with a Monitor attached through the public API: fresh rendered batches every
iteration, the case's loss, Adam, pictures generated at checkpoints, samples at the end; then the case's own
measurements, figures, the symptoms section and the "Why it collapses" conclusion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from gendiag.config import Case
from gendiag.findings import Finding
from gendiag.report import ProbeSection
from gendiag.recipes.flattened.checkpoints import Checkpoint, Reference, generate
from gendiag.recipes.flattened.data import ImageStreams
from gendiag.recipes.flattened.facts import measure
from gendiag.recipes.flattened.figures import (CHECKPOINT_CAPTION, LOSS_CAPTION, SIMILARITY_CAPTION,
                                               checkpoint_figure, loss_figure, similarity_figure)
from gendiag.recipes.flattened.loss import flattened_loss
from gendiag.recipes.flattened.sampling import VelocityField, euler_time_points
from gendiag.recipes.flattened.story import explain, symptoms
from gendiag.runner import RunContext
from reference_models.concat_mlp import ConcatMLP


@dataclass
class History:
    losses: list[float] = field(default_factory=list)
    times: list[torch.Tensor] = field(default_factory=list)
    per_sample: list[torch.Tensor] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)


def run(case: Case, ctx: RunContext) -> dict[str, Any]:
    data_cfg, train_cfg, sample_cfg = case.data, case.training, case.sampling
    streams = ImageStreams(data_cfg)
    data_gen, source_gen, time_gen = ctx.generator(1), ctx.generator(2), ctx.generator(3)
    fixed_gen, final_gen = ctx.generator(4), ctx.generator(5)
    model = ConcatMLP(streams.dim, hidden=tuple(case.model.hidden))
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, fused=True)  # same update, ~8× faster on CPU
    initial = [p.detach().clone() for p in model.parameters()]

    def sampler(velocity: VelocityField, x0: torch.Tensor, steps: int) -> torch.Tensor:
        return euler_time_points(velocity, x0, steps + 1, frozen=sample_cfg.frozen)

    size = data_cfg.image_size
    mon = ctx.start_monitor("flow", source=streams.source, sampler=sampler, image_shape=(1, size, size))
    mon.watch(model, name="model", x_arg=0, t_arg=1)
    target_image = streams.data(1, fixed_gen)
    reference = Reference(target_image, streams.source(sample_cfg.images, fixed_gen),
                          threshold=0.5 * float(target_image.max()))
    due = {i for i in train_cfg.checkpoints if i <= train_cfg.steps} | {train_cfg.steps}
    history = History()
    done = ctx.track(modules={"model": model}, optimizers={"adam": optimizer},
                     generators={"data": data_gen, "source": source_gen, "time": time_gen})
    if done == 0:
        history.checkpoints.append(generate(mon, model, reference, sample_cfg, 0))

    for step in range(done + 1, train_cfg.steps + 1):
        with mon.phase("data"):
            z = streams.data(train_cfg.batch_size, data_gen)
            x0 = streams.source(train_cfg.batch_size, source_gen)
        with mon.phase("step"):
            t = torch.rand(train_cfg.batch_size, generator=time_gen)
            batch = flattened_loss(model, x0, z, t, train_cfg.loss)
            optimizer.zero_grad(set_to_none=True)
            batch.loss.backward()
            optimizer.step()
        if step == 1 or step % train_cfg.observe_every == 0:
            mon.observe_data(z, role="data")
            mon.observe_data(x0, role="source")
        loss = float(batch.loss.detach())
        history.losses.append(loss)
        history.times.append(t)
        history.per_sample.append(batch.per_sample_loss)
        mon.step(step, loss, t=t, per_sample_loss=batch.per_sample_loss, target_norm=batch.target.norm(dim=1),
                 lr=train_cfg.lr)
        if step in due:
            checkpoint = generate(mon, model, reference, sample_cfg, step)
            history.checkpoints.append(checkpoint)
            for name in ("cos_target", "cos_source", "iou_target", "iou_source"):
                mon.log_scalar(f"flattened/{name}", getattr(checkpoint, name), step)
        ctx.progress(step, {"loss": loss})

    model.eval()
    starts = streams.source(sample_cfg.n_samples, final_gen)
    with mon.sampling():
        samples = euler_time_points(model, starts, sample_cfg.time_points, sample_cfg.frozen)
    mon.observe_samples(samples)
    facts = measure(mon, model, streams, reference, case, history.checkpoints, history.losses, samples, starts,
                    final_gen, done, initial, torch.cat(history.times) if history.times else torch.zeros(0),
                    torch.cat(history.per_sample) if history.per_sample else torch.zeros(0))
    figures = [
        mon.save_figure(checkpoint_figure(history.checkpoints, reference), "flattened_checkpoints",
                        caption=CHECKPOINT_CAPTION),
        mon.save_figure(similarity_figure(history.checkpoints, facts.baseline_cos, facts.baseline_iou),
                        "flattened_similarity", caption=SIMILARITY_CAPTION),
        mon.save_figure(loss_figure(history.losses, history.times, history.per_sample, train_cfg.loss, done),
                        "flattened_loss", caption=LOSS_CAPTION),
    ]
    mon.add_section("Symptoms: generated pictures against the target and the start picture",
                    text=symptoms(history.checkpoints, facts), figures=figures[:2])

    def conclusion(findings: list[Finding]) -> ProbeSection:
        return ProbeSection("Why it collapses", text=explain(findings, facts), figures=figures[2:])

    mon.add_conclusion(conclusion)
    final = history.checkpoints[-1]
    return {
        "final_loss": facts.losses.last, "loss_median": facts.losses.median, "loss_max": facts.losses.max,
        "cos_target": final.cos_target, "cos_source": final.cos_source,
        "iou_target": final.iou_target, "iou_source": final.iou_source,
        "baseline_cos_target_source": facts.baseline_cos, "sampler_displacement": facts.displacement,
        **facts.results(),
    }

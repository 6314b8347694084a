"""Flow matching on 2D point clouds: a sample is a point, a batch is a point cloud.

The plain loop: draw data x1 and noise x0 ~ N(0, I), pick t ~ U[0, 1), regress the network on the path's
conditional velocity, step Adam; then integrate the learned field from fresh noise and measure the
Wasserstein-2 distance to held-out data beside the two-sample floor."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import torch

from gendiag.config import Case
from gendiag.data import make_distribution
from gendiag.recipes.points_eval import compare_to_data, scatter_panels
from gendiag.recipes.schedules import learning_rate
from gendiag.runner import RunContext
from reference_models.flow_matching import flow_matching_loss
from reference_models.nets import VelocityMLP
from reference_models.paths import PATHS
from reference_models.solvers import SOLVERS


def run(case: Case, ctx: RunContext) -> dict[str, Any]:
    data_cfg, model_cfg, train_cfg, sample_cfg = case.data, case.model, case.training, case.sampling
    distribution = make_distribution(data_cfg.distribution, **data_cfg.params)
    data_gen, noise_gen = ctx.generator(1), ctx.generator(2)
    model = VelocityMLP(dim=2, hidden=model_cfg.hidden, depth=model_cfg.depth, time_dim=model_cfg.time_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    path = PATHS[train_cfg.path]()
    solver = SOLVERS[sample_cfg.method]

    mon = ctx.start_monitor("flow", source=lambda n, generator=None: torch.randn(n, 2, generator=generator),
                            sampler=lambda field, x0, steps: solver(field, x0, steps), path=train_cfg.path)
    mon.watch(model, name="model", x_arg=0, t_arg=1)
    done = ctx.track(modules={"model": model}, optimizers={"adam": optimizer},
                     generators={"data": data_gen, "noise": noise_gen})
    final_loss = float("nan")
    for step in range(done + 1, train_cfg.steps + 1):
        lr = learning_rate(train_cfg.lr, train_cfg.lr_decay, step, train_cfg.steps)
        with mon.phase("data"):
            x1 = distribution.sample(train_cfg.batch_size, generator=data_gen)
            x0 = torch.randn(train_cfg.batch_size, 2, generator=noise_gen)
        with mon.phase("step"):
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = flow_matching_loss(model, x0, x1, path, generator=noise_gen)
            optimizer.zero_grad(set_to_none=True)
            batch.loss.backward()
            optimizer.step()
        if step == 1 or step % train_cfg.observe_every == 0:
            mon.observe_data(x1, role="data")
            mon.observe_data(x0, role="source")
        mon.step(step, batch.loss, t=batch.t, per_sample_loss=batch.per_sample_loss, lr=lr)
        final_loss = batch.loss.item()
        ctx.progress(step, {"loss": final_loss})

    model.eval()
    start = torch.randn(sample_cfg.n_samples, 2, generator=noise_gen)
    with mon.sampling():
        samples = solver(model, start, sample_cfg.steps)
    mon.observe_samples(samples)
    comparison = compare_to_data(samples, distribution, data_cfg.heldout, ctx.generator(3))
    mon.add_section("Samples against data", text=comparison.text(),
                    figures=[mon.save_figure(scatter_panels([("held-out data", comparison.heldout),
                                                             (f"samples (W2 {comparison.w2:.3f})", samples)]),
                                             "samples_vs_data")])
    return {"w2": comparison.w2, "w2_floor": comparison.floor, "w2_ratio": comparison.ratio, "final_loss": final_loss}


"""The classical baseline on 2D point clouds: a Gaussian mixture fitted by EM, one EM iteration per step, with its
exact log-likelihood on training and held-out points and W2 of its samples against held-out data."""

from __future__ import annotations

from typing import Any


from gendiag.config import Case
from gendiag.data import make_distribution
from gendiag.recipes.points_eval import compare_to_data, scatter_panels
from gendiag.runner import RunContext
from reference_models.gmm import GMM


def run(case: Case, ctx: RunContext) -> dict[str, Any]:
    data_cfg, train_cfg = case.data, case.training
    distribution = make_distribution(data_cfg.distribution, **data_cfg.params)
    data_gen, eval_gen = ctx.generator(1), ctx.generator(3)
    train = distribution.sample(data_cfg.train_points, generator=data_gen)
    gmm = GMM(components=case.model.components, seed=case.file.seed)

    mon = ctx.start_monitor("generic")
    mon.observe_data(train, role="data")
    previous = -float("inf")
    step = 0
    for step in range(1, train_cfg.steps + 1):
        with mon.phase("step"):
            score = gmm.em_step(train)
        mon.step(step, -score, gain=score - previous if step > 1 else 0.0)
        ctx.progress(step, {"loss": -score})
        if score - previous < train_cfg.tol:
            break
        previous = score

    with mon.sampling():
        samples = gmm.sample(case.sampling.n_samples, generator=eval_gen)
    mon.observe_samples(samples)
    comparison = compare_to_data(samples, distribution, min(case.sampling.n_samples, data_cfg.heldout), eval_gen)
    heldout_nll = -float(gmm.log_prob(comparison.heldout).mean())
    figure = scatter_panels([("held-out data", comparison.heldout),
                             (f"GMM samples (W2 {comparison.w2:.3f}, floor {comparison.floor:.3f})", samples)])
    mon.add_section(
        "Samples against data",
        text=(comparison.text("GMM samples") + f"\n\n{case.model.components} components after {step} EM iterations: "
              f"negative log-likelihood {-score:.4f} nats per point on the training points, {heldout_nll:.4f} on "
              "held-out points (exact, from the mixture density)."),
        figures=[mon.save_figure(figure, "samples_vs_data")],
    )
    return {"w2": comparison.w2, "w2_floor": comparison.floor, "w2_ratio": comparison.ratio,
            "train_nll": -score, "heldout_nll": heldout_nll, "em_iterations": step}


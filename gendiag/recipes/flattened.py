"""The failed flattened-image flow-matching project, reproduced: every sample is a 64×64 picture rendered from
50,000 points of a 2D distribution and flattened to 4,096 numbers.

The loop is the original's: a new batch of B data images (each from fresh points) and B source images (rendered
standard-Gaussian clouds, or pixel noise N(0, I) in the fix rungs) at every iteration; the ConcatMLP velocity
network on [x, t]; either the original buggy loss, ‖u_θ(x0, t) − (z − x0)/(1 − t)‖² (the source x0 fed where x_t
belongs, the velocity evaluated at x0 too), or the correct one, ‖u_θ(x_t, t) − (z − x_t)/(1 − t)‖² with
x_t = t·z + (1 − t)·x0, which equals ‖u_θ(x_t, t) − (z − x0)‖² and is computed in that stable form; Adam; Euler
over `time_points` equal time points from one rendered Gaussian picture. Along training the recipe generates
images at checkpoint iterations and measures how like the target and how like their own start image they are,
then writes a "Why it collapses" section whose every claim cites a number measured in the run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from pydantic import Field

from gendiag.config import Case, DistributionName, DistributionParams, Section
from gendiag.data import make_distribution, rasterize
from gendiag.figures import legend
from gendiag.findings import Finding
from gendiag.probes.base import ProbeSection
from gendiag.recipes import Recipe, register
from gendiag.runner import RunContext
from reference_models.concat_mlp import ConcatMLP

LossKind = Literal["buggy_x0", "correct"]
VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PROBE_TIMES = (0.0, 0.5, 0.9, 0.99)
SCATTER_POINTS = 20_000


class Data(Section):
    distribution: DistributionName = Field("moons", description="a name from gendiag.data.DISTRIBUTIONS")
    params: DistributionParams = Field(default_factory=dict, description="parameters of the distribution")
    image_size: int = Field(64, ge=4, le=256, description="images are image_size × image_size, flattened")
    render_scale: float = Field(5.0, gt=0, description="the rasterizer's square is [-render_scale, render_scale]²")
    mode: Literal["binary", "density"] = Field("binary", description="how points become pixels")
    points_per_image: int = Field(50_000, ge=1, description="fresh points rendered into each image")
    source: Literal["rendered_gaussian", "pixel_noise"] = Field(
        "rendered_gaussian", description="the original's rendered standard-Gaussian images, or pixel noise N(0, I)")
    source_scale: float = Field(5.0, gt=0, description="render scale of the Gaussian source images")


class Model(Section):
    hidden: list[int] = Field(default_factory=lambda: [2048, 512, 256], min_length=1,
                              description="hidden widths of the ConcatMLP (input and output are image_size²)")


class Training(Section):
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-6, gt=0, le=1)
    loss: LossKind = Field("buggy_x0", description="buggy_x0: the original; correct: x_t fed and used")
    observe_every: int = Field(50, ge=1, description="iterations between batches shown to the data probes")
    checkpoints: list[int] = Field(default_factory=lambda: [5, 15, 50, 100, 250, 500, 1000],
                                   description="iterations at which images are generated (0 and the last are added)")


class Sampling(Section):
    time_points: int = Field(100, ge=2, description="Euler over this many equal time points from 0 to 1")
    frozen: bool = Field(False, description="the rewrite's sampler: the step's result goes to a new variable")
    images: int = Field(4, ge=1, le=64, description="images generated at each checkpoint, each from its own start")
    n_samples: int = Field(16, ge=2, description="images generated at the end for the probes")


# -- the original's pieces ------------------------------------------------------------------------------------


def render_images(points: torch.Tensor, data: Data, scale: float) -> torch.Tensor:
    """Point clouds (B, N, 2) to flattened images (B, size²) under the case's mode."""
    return rasterize(points, size=data.image_size, scale=scale, mode=data.mode, flatten=True).images


class ImageStreams:
    """Fresh data and source images, each rendered from its own `points_per_image` points."""

    def __init__(self, data: Data) -> None:
        self.cfg = data
        self.target = make_distribution(data.distribution, **data.params)
        self.gaussian = make_distribution("gaussian")
        self.dim = data.image_size**2

    def data(self, n: int, generator: torch.Generator) -> torch.Tensor:
        points = self.target.sample(n * self.cfg.points_per_image, generator=generator).float()
        return render_images(points.view(n, self.cfg.points_per_image, 2), self.cfg, self.cfg.render_scale)

    def source(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.cfg.source == "pixel_noise":
            return torch.randn(n, self.dim, generator=generator)
        points = self.gaussian.sample(n * self.cfg.points_per_image, generator=generator).float()
        return render_images(points.view(n, self.cfg.points_per_image, 2), self.cfg, self.cfg.source_scale)


@dataclass
class FlatBatch:
    loss: torch.Tensor
    per_sample_loss: torch.Tensor
    t: torch.Tensor
    inputs: torch.Tensor
    target: torch.Tensor


def flattened_loss(model: torch.nn.Module, x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor,
                   kind: LossKind) -> FlatBatch:
    """The per-sample squared error summed over pixels, averaged over the batch.

    buggy_x0: u_θ(x0, t) against (z − x0)/(1 − t): the original, x0 where x_t belongs.
    correct:  u_θ(x_t, t) against (z − x_t)/(1 − t) = z − x0, with x_t = t·z + (1 − t)·x0."""
    if x0.shape != z.shape or x0.dim() != 2:
        raise ValueError(f"flattened_loss: x0 and z must be flat batches of one shape, got {tuple(x0.shape)} "
                         f"and {tuple(z.shape)}")
    column = t.reshape(-1, 1)
    if kind == "buggy_x0":
        inputs, target = x0, (z - x0) / (1 - column)
    elif kind == "correct":
        inputs, target = column * z + (1 - column) * x0, z - x0
    else:
        raise ValueError(f"flattened_loss: kind must be 'buggy_x0' or 'correct', got {kind!r}")
    per_sample = (model(inputs, t) - target).pow(2).sum(1)
    return FlatBatch(per_sample.mean(), per_sample.detach(), t, inputs, target)


@torch.no_grad()
def euler_time_points(field: VelocityField, x0: torch.Tensor, time_points: int = 100, frozen: bool = False,
                      on_state: Callable[[float, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Euler over `time_points` equal time points from 0 to 1 (time_points − 1 steps), as the original sampled.

    frozen=True is the rewrite's bug: each step's result is assigned to a new variable, so the state never moves
    and the start image comes back. `on_state(t, x)` sees the state the field is evaluated at, at every step."""
    if time_points < 2:
        raise ValueError(f"euler_time_points: time_points must be >= 2, got {time_points}")
    times = torch.linspace(0.0, 1.0, time_points)
    x = x0.clone()
    for k in range(time_points - 1):
        t = float(times[k])
        if on_state is not None:
            on_state(t, x)
        step = (times[k + 1] - times[k]).item() * field(x, torch.full((x.shape[0],), t, dtype=x.dtype))
        if frozen:
            moved = x + step  # noqa: F841  (the rewrite's bug, kept: the result never reaches x)
        else:
            x = x + step
    return x


# -- similarity -----------------------------------------------------------------------------------------------


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of flattened images, row by row (b broadcasts)."""
    return torch.nn.functional.cosine_similarity(a, b.expand_as(a), dim=1, eps=1e-12)


def binary_iou(a: torch.Tensor, b: torch.Tensor, threshold: float) -> torch.Tensor:
    """Intersection over union of the pixels above `threshold`, row by row (1 when both are empty)."""
    on_a, on_b = a > threshold, (b > threshold).expand_as(a)
    union = (on_a | on_b).sum(1).float()
    return torch.where(union > 0, (on_a & on_b).sum(1).float() / union.clamp_min(1), 1.0)


@dataclass
class Checkpoint:
    iteration: int
    images: torch.Tensor
    cos_target: float
    cos_source: float
    iou_target: float
    iou_source: float


@dataclass
class Reference:
    """The fixed pictures the checkpoints are judged against: one target image and the start images."""

    target: torch.Tensor
    starts: torch.Tensor
    threshold: float

    def judge(self, iteration: int, images: torch.Tensor) -> Checkpoint:
        return Checkpoint(
            iteration, images,
            cos_target=float(cosine(images, self.target).mean()), cos_source=float(cosine(images, self.starts).mean()),
            iou_target=float(binary_iou(images, self.target, self.threshold).mean()),
            iou_source=float(binary_iou(images, self.starts, self.threshold).mean()))


# -- the run --------------------------------------------------------------------------------------------------


@dataclass
class History:
    losses: list[float] = field(default_factory=list)
    times: list[torch.Tensor] = field(default_factory=list)
    per_sample: list[torch.Tensor] = field(default_factory=list)
    input_progress: list[torch.Tensor] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    data_seconds: float = 0.0
    step_seconds: float = 0.0


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
        history.checkpoints.append(_generate(mon, model, reference, sample_cfg, 0))

    for step in range(done + 1, train_cfg.steps + 1):
        started = time.perf_counter()
        with mon.phase("data"):
            z = streams.data(train_cfg.batch_size, data_gen)
            x0 = streams.source(train_cfg.batch_size, source_gen)
        rendered = time.perf_counter()
        with mon.phase("step"):
            t = torch.rand(train_cfg.batch_size, generator=time_gen)
            batch = flattened_loss(model, x0, z, t, train_cfg.loss)
            optimizer.zero_grad(set_to_none=True)
            batch.loss.backward()
            optimizer.step()
        history.data_seconds += rendered - started
        history.step_seconds += time.perf_counter() - rendered
        if step == 1 or step % train_cfg.observe_every == 0:
            mon.observe_data(z, role="data")
            mon.observe_data(x0, role="source")
        loss = float(batch.loss.detach())
        history.losses.append(loss)
        history.times.append(t)
        history.per_sample.append(batch.per_sample_loss)
        history.input_progress.append(((batch.inputs - x0).norm(dim=1) / (z - x0).norm(dim=1).clamp_min(1e-12)).detach())
        mon.step(step, loss, t=t, per_sample_loss=batch.per_sample_loss, target_norm=batch.target.norm(dim=1),
                 lr=train_cfg.lr)
        if step in due:
            checkpoint = _generate(mon, model, reference, sample_cfg, step)
            history.checkpoints.append(checkpoint)
            for name in ("cos_target", "cos_source", "iou_target", "iou_source"):
                mon.ctx.log_scalar(f"flattened/{name}", getattr(checkpoint, name), step)
        ctx.progress(step, {"loss": loss})

    model.eval()
    starts = streams.source(sample_cfg.n_samples, final_gen)
    progress_at: dict[float, list[float]] = {}
    gap = (target_image - starts).norm(dim=1)

    def record_progress(t: float, x: torch.Tensor) -> None:
        progress_at.setdefault(round(t, 4), []).append(float(((x - starts).norm(dim=1) / gap).mean()))

    with mon.sampling():
        samples = euler_time_points(model, starts, sample_cfg.time_points, sample_cfg.frozen, record_progress)
    mon.observe_samples(samples)
    facts = _measure(mon, model, streams, reference, history, initial, case, samples, starts, progress_at,
                     final_gen, done)
    figures = [
        mon.save_figure(_checkpoint_figure(history.checkpoints, reference), "flattened_checkpoints"),
        mon.save_figure(_similarity_figure(history.checkpoints, facts), "flattened_similarity"),
        mon.save_figure(_loss_figure(history, facts, train_cfg.loss, done), "flattened_loss"),
    ]
    mon.add_section("Symptoms: generated pictures against the target and the start picture",
                    text=_symptoms_text(history.checkpoints, facts), figures=figures[:2])
    mon.add_conclusion(lambda findings: ProbeSection("Why it collapses", text=explain(facts, case, findings),
                                                     figures=figures[2:]))
    final = history.checkpoints[-1]
    return {
        "final_loss": history.losses[-1] if history.losses else float("nan"),
        "loss_median": facts["loss_median"], "loss_max": facts["loss_max"],
        "cos_target": final.cos_target, "cos_source": final.cos_source,
        "iou_target": final.iou_target, "iou_source": final.iou_source,
        "baseline_cos_target_source": facts["baseline_cos"],
        "sampler_displacement": facts["displacement"], "weight_change": facts["weight_change"],
        "loss_share_t_above_0.9": facts["share_t90"], "data_time_share": facts["data_share"],
    }


def _generate(mon: Any, model: torch.nn.Module, reference: Reference, sample_cfg: Sampling,
              iteration: int) -> Checkpoint:
    """Images from the fixed start pictures with the case's sampler, as the original looked at them."""
    was_training = model.training
    model.eval()
    with mon.sampling():
        images = euler_time_points(model, reference.starts, sample_cfg.time_points, sample_cfg.frozen)
    model.train(was_training)
    return reference.judge(iteration, images)


# -- the measurements behind "Why it collapses" ---------------------------------------------------------------


def _measure(mon: Any, model: torch.nn.Module, streams: ImageStreams, reference: Reference, history: History,
             initial: list[torch.Tensor], case: Case, samples: torch.Tensor, starts: torch.Tensor,
             progress_at: dict[float, list[float]], generator: torch.Generator, resumed_at: int) -> dict[str, Any]:
    """Every number the explanation cites, measured here (cheap, exact) rather than assumed."""
    train_cfg = case.training
    losses = np.asarray(history.losses) if history.losses else np.asarray([np.nan])
    t_all = torch.cat(history.times) if history.times else torch.zeros(1)
    loss_all = torch.cat(history.per_sample) if history.per_sample else torch.zeros(1)
    total = float(loss_all.sum()) or 1.0
    input_progress = torch.cat(history.input_progress) if history.input_progress else torch.zeros(1)
    late = t_all >= 0.9
    deltas = [(p.detach() - p0) for p, p0 in zip(model.parameters(), initial)]
    weight_change = float(torch.sqrt(sum(d.pow(2).sum() for d in deltas)) /
                          torch.sqrt(sum(p0.pow(2).sum() for p0 in initial)))
    largest_move = max(float(d.abs().max()) for d in deltas)
    probe_data = streams.data(8, generator)
    probe_source = streams.source(8, generator)
    gap = float((reference.target - probe_source).norm(dim=1).mean())
    outputs = {t: mon.ctx.evaluate("model", probe_source, t) for t in PROBE_TIMES}
    output_norm = {t: float(outputs[t].norm(dim=1).mean()) for t in PROBE_TIMES}
    raw_gap = (probe_data - probe_source)
    if train_cfg.loss == "buggy_x0":
        target_norm = {t: float(raw_gap.norm(dim=1).mean()) / (1 - t) for t in PROBE_TIMES}
    else:
        target_norm = {t: float(raw_gap.norm(dim=1).mean()) for t in PROBE_TIMES}
    on_data = mon.ctx.evaluate("model", probe_data, 0.5)
    x_sensitivity = float((on_data - outputs[0.5]).norm(dim=1).mean()) / max(output_norm[0.5], 1e-12)
    t_sensitivity = float((outputs[0.99] - outputs[0.0]).norm(dim=1).mean()) / max(output_norm[0.0], 1e-12)
    unreachable = _unreachable_share(model, reference.target - probe_source)
    pairwise = torch.cdist(probe_data, probe_data)
    within = float(pairwise[~torch.eye(len(probe_data), dtype=torch.bool)].mean())
    between = float(torch.cdist(probe_data, probe_source).mean())
    progress_times = sorted(progress_at)
    sampling_progress = {t: float(np.mean(progress_at[t])) for t in progress_times}
    last_t = progress_times[-1] if progress_times else 0.0
    final_gap = (reference.target - starts).norm(dim=1)
    data_share = history.data_seconds / max(history.data_seconds + history.step_seconds, 1e-12)
    return {
        "steps": train_cfg.steps, "resumed_at": resumed_at, "lr": train_cfg.lr,
        "loss_kind": train_cfg.loss, "frozen": case.sampling.frozen,
        "loss_first": float(losses[0]), "loss_last": float(losses[-1]), "loss_median": float(np.median(losses)),
        "loss_max": float(losses.max()), "loss_min": float(losses.min()),
        "share_t90": float(loss_all[t_all >= 0.9].sum()) / total,
        "share_t99": float(loss_all[t_all >= 0.99].sum()) / total,
        "t_draws": int(t_all.numel()),
        "train_progress_late": float(input_progress[late].mean()) if late.any() else float("nan"),
        "t_late_mean": float(t_all[late].mean()) if late.any() else float("nan"),
        "weight_change": weight_change, "largest_move": largest_move,
        "adam_bound": train_cfg.lr * (train_cfg.steps - resumed_at),
        "output_norm": output_norm, "target_norm": target_norm, "gap": gap,
        "x_sensitivity": x_sensitivity, "t_sensitivity": t_sensitivity,
        "displacement": float(((samples - starts).norm(dim=1) / final_gap).mean()),
        "sampling_progress": sampling_progress, "last_t": last_t,
        "within_data": within, "data_to_source": between,
        "baseline_cos": float(cosine(reference.starts, reference.target).mean()),
        "baseline_iou": float(binary_iou(reference.starts, reference.target, reference.threshold).mean()),
        "unreachable": unreachable, "last_width": int(case.model.hidden[-1]),
        "data_share": data_share, "data_seconds": history.data_seconds, "step_seconds": history.step_seconds,
        "pixels_on_target": int((reference.target > reference.threshold).sum()),
        **_peak(history.checkpoints),
        "dim": streams.dim, "batch_size": train_cfg.batch_size,
    }


def _unreachable_share(model: ConcatMLP, needed: torch.Tensor) -> float:
    """Share of the needed displacements' energy outside the span of the last layer's weights and bias: whatever
    the hidden units do, the network's output cannot point there."""
    last = model.net[-1]
    basis, _ = torch.linalg.qr(torch.cat([last.weight.detach(), last.bias.detach()[:, None]], dim=1))
    outside = needed - (needed @ basis) @ basis.T
    return float(outside.pow(2).sum() / needed.pow(2).sum().clamp_min(1e-12))


def _peak(checkpoints: list[Checkpoint]) -> dict[str, Any]:
    best = max(checkpoints, key=lambda c: c.cos_target)
    last = checkpoints[-1]
    return {"peak_iteration": best.iteration, "peak_cos_target": best.cos_target, "peak_cos_source": best.cos_source,
            "last_cos_target": last.cos_target, "last_cos_source": last.cos_source}


def explain(facts: dict[str, Any], case: Case, findings: list[Finding] = ()) -> str:
    """The collapse in plain words, heaviest cause first; each claim quotes a number measured in this run, and
    the probes' findings that back a claim are listed after it by code."""
    claims: list[str] = []
    ruled_out: list[str] = []
    moved = facts["displacement"]
    start = "a rendered source picture" if case.data.source == "rendered_gaussian" else "pixel noise"
    lead = (f"The sampler hardly moves its state: the generated picture ends {moved:.1%} of the way from its start "
            f"({start}) towards the target, so it *is* the start picture "
            if moved < 0.25 else
            f"The sampler moves its state {moved:.0%} of the way from its start towards the target ")
    if facts["frozen"]:
        claims.append(lead + "— and here by construction: the frozen sampler assigns each Euler step to a new "
                      "variable, so the state never changes (`sampler-state-frozen`).")
    elif moved < 0.25 and facts["weight_change"] > 0.05:
        claims.append(lead + f"(a displacement ratio of {moved:.3f}), although the weights moved "
                      f"{facts['weight_change']:.2f} of their initial norm: what the network learned cannot move it.")
    elif moved < 0.25:
        claims.append(
            lead + f"(a displacement ratio of {moved:.3f}; 1 would reach the target). The network's output is too "
            f"small to move it: at the start picture its velocity has norm {facts['output_norm'][0.0]:.3g} at t = 0 "
            f"and {facts['output_norm'][0.5]:.3g} at t = 0.5, while the straight path needs "
            f"‖target − start‖ ≈ {facts['gap']:.3g} in total. The learning rate decides this: with lr = "
            f"{facts['lr']:g}, Adam moves a weight by at most about lr per step, {facts['adam_bound']:.3g} over the "
            f"run (largest measured move {facts['largest_move']:.3g}); all weights together moved "
            f"{facts['weight_change']:.2e} of their initial norm (`params-stalled` where the gradients probe "
            "ran), so the network stays near its random initialisation, whose output is close to zero.")
    else:
        ruled_out.append(f"a sampler that does not move: the state travels {moved:.0%} of the way to the target.")

    progress = facts["sampling_progress"]
    late = facts["last_t"]
    if facts["loss_kind"] == "buggy_x0":
        mid = progress.get(min(progress, key=lambda t: abs(t - 0.5)), float("nan")) if progress else float("nan")
        claims.append(
            "The x_t bug: in training the network was only ever fed the source pictures x0, at every t. Measured "
            "as the distance of each training input from its source picture over the distance from the source "
            f"picture to its data picture, the inputs with t ≥ 0.9 (mean t {facts['t_late_mean']:.2f}) sat "
            f"{facts['train_progress_late']:.3f} of the way to the data, where x_t sits t of the way. So the field "
            "is trained only at x0, never on the path a working sampler must walk. "
            + (f"In this run the sampler itself hardly moved ({mid:.3f} of the way at t ≈ 0.5, "
               f"{progress.get(late, float('nan')):.3f} at t = {late:.2f}), so sampling inputs also stayed at the "
               "source and the per-t comparison of training and sampling inputs shows no gap until the learning "
               "rate lets the field move the state (run `flattened_moons_lr_only.yaml`); the probe's finding "
               "(`train-sample-input-mismatch`) stands on the training inputs alone, which do not change with t. "
               if moved < 0.25 else
               f"In sampling the state moved {mid:.3f} of the way by t ≈ 0.5 and "
               f"{progress.get(late, float('nan')):.3f} by t = {late:.2f}: from its first steps on the network is "
               "evaluated where it was never trained (`train-sample-input-mismatch`). ")
            + _sensitivity(facts) + _relapse(facts))
        claims.append(
            f"The target explodes as t → 1: evaluated at x0, (z − x0)/(1 − t) has norm "
            f"{facts['target_norm'][0.0]:.3g} at t = 0, {facts['target_norm'][0.9]:.3g} at t = 0.9 and "
            f"{facts['target_norm'][0.99]:.3g} at t = 0.99. Draws with t ≥ 0.9 ({facts['t_draws']} draws in all, "
            f"about 10% of them) carried {facts['share_t90']:.1%} of the summed loss, t ≥ 0.99 "
            f"{facts['share_t99']:.1%}; so the loss ({facts['loss_min']:.3g} to {facts['loss_max']:.3g}, median "
            f"{facts['loss_median']:.3g}, last {facts['loss_last']:.3g}) measures which t the batch happened to "
            "draw, not progress, and its gradient is steered by a handful of samples (`target-explodes`, "
            "`loss-t-imbalance`).")
    else:
        ruled_out.append(
            f"the x_t bug: the network is fed x_t and the target z − x0 stays at norm {facts['target_norm'][0.0]:.3g} "
            f"for every t; t ≥ 0.9 carried {facts['share_t90']:.1%} of the loss, about its 10% share of draws.")

    spread = facts["within_data"] / max(facts["data_to_source"], 1e-12)
    data_claim = (
        f"The data set holds essentially one picture: two data images lie {facts['within_data']:.3g} apart on "
        f"average, against {facts['data_to_source']:.3g} from a data image to a source image (ratio {spread:.3f}), "
        f"because every image is the same {case.data.points_per_image}-point rendering of one distribution "
        f"(`data-near-duplicates`, `rendered-point-cloud`). In {facts['dim']} dimensions a batch of "
        f"{facts['batch_size']} such images teaches a map from one picture to one picture; the 2D distribution "
        "lives in the positions of the points, which the rendering throws away.")
    if case.data.source == "rendered_gaussian":
        claims.append(
            data_claim + f" The source is a picture too, not noise: a start picture and the target share cosine "
            f"similarity {facts['baseline_cos']:.3f} (binarised IoU {facts['baseline_iou']:.3f}) before any "
            "training, which is the level a generated picture falls back to when the flow does nothing "
            "(`source-not-noise`)." + (" Pixels are pure 0/1 (`data-binary-pixels`)."
                                       if case.data.mode == "binary" else ""))
    else:
        claims.append(data_claim + " (The source here is pixel noise N(0, I), as flow matching assumes.)")
    if facts["unreachable"] > 0.25:
        claims.insert(0 if moved < 0.25 and not facts["frozen"] and facts["loss_kind"] == "correct" else len(claims),
            f"The network cannot express the move: its last hidden layer has {facts['last_width']} units, so its "
            f"output lies in a {facts['last_width'] + 1}-dimensional affine subspace of the {facts['dim']}-"
            f"dimensional image space, and {facts['unreachable']:.0%} of the energy of the needed displacement "
            "(target − start) lies outside it."
            + (" From pixel noise the velocity must cancel the noise in every pixel, which this bottleneck cannot "
               "do: the samples keep their noise." if case.data.source == "pixel_noise" else ""))
    claims.append(
        f"Time: rendering took {facts['data_share']:.0%} of the loop ({facts['data_seconds']:.1f} s of "
        f"{facts['data_seconds'] + facts['step_seconds']:.1f} s), done on the CPU for every image of every batch; "
        "this slows the run but does not change what it learns (`data-bottleneck` where the timing probe ran).")
    lines = ["In order of weight, each with the number measured in this run:", ""]
    lines += [f"{k}. {claim}" for k, claim in enumerate(claims, start=1)]
    if ruled_out:
        lines += ["", "Ruled out in this run:", ""] + [f"- {item}" for item in ruled_out]
    backing = [f for f in findings if f"`{f.code}`" in "\n".join(lines)]
    if backing:
        lines += ["", "The probes' findings behind these claims (details under Findings):", ""]
        lines += [f"- `{f.code}` ({f.severity}): {f.title}" for f in backing]
    if facts["resumed_at"]:
        lines += ["", f"(This run resumed at iteration {facts['resumed_at']}: loss shares and weight changes cover "
                      "the iterations after it.)"]
    return "\n".join(lines)


def _sensitivity(facts: dict[str, Any]) -> str:
    """What the trained network's output depends on, against how much its target changes over t."""
    growth = facts["target_norm"][0.99] / max(facts["target_norm"][0.0], 1e-12)
    text = (f"Its output at a source picture changes by {facts['t_sensitivity']:.1%} between t = 0 and t = 0.99 while "
            f"the target it regresses on grows {growth:.0f}-fold over the same range")
    if facts["t_sensitivity"] < 0.05:
        text += " — it has not learned the time dependence (`field-ignores-t`)"
    return text + (f"; swapping the source picture for a data picture at t = 0.5 changes it by "
                   f"{facts['x_sensitivity']:.1%}.")


def _relapse(facts: dict[str, Any]) -> str:
    """The picture that came close to the target and then fell back, when the checkpoints show it."""
    if facts["peak_cos_target"] - facts["last_cos_target"] < 0.05:
        return ""
    return (f" The picture came closest to the target at iteration {facts['peak_iteration']} (cosine "
            f"{facts['peak_cos_target']:.3f}) and fell back to {facts['last_cos_target']:.3f} by the end while its "
            f"cosine to the start picture rose from {facts['peak_cos_source']:.3f} to {facts['last_cos_source']:.3f}:"
            " off x0 the field is untrained, and its size follows whichever t near 1 the last batches drew.")


def _symptoms_text(checkpoints: list[Checkpoint], facts: dict[str, Any]) -> str:
    rows = ["| iteration | cos to target | cos to start | IoU to target | IoU to start |", "|---|---|---|---|---|"]
    rows += [f"| {c.iteration} | {c.cos_target:.3f} | {c.cos_source:.3f} | {c.iou_target:.3f} | {c.iou_source:.3f} |"
             for c in checkpoints]
    first, last = checkpoints[0], checkpoints[-1]
    verdict = ("closer to its start picture than to the target: the collapse"
               if last.cos_source > last.cos_target else "closer to the target than to its start picture")
    return "\n".join([
        f"Each checkpoint generates {len(last.images)} images, each from its own fixed start picture, with the "
        "case's sampler. Similarity is the cosine of the flattened images and the IoU of the pixels above half "
        "the target's peak value, averaged over the images; *to target* compares with one fixed data image, "
        "*to start* with the picture each image was generated from. Before training a start picture and the "
        f"target already share cosine {facts['baseline_cos']:.3f} (IoU {facts['baseline_iou']:.3f}).", "",
        *rows, "",
        f"From iteration {first.iteration} to {last.iteration} the cosine to the target went "
        f"{first.cos_target:.3f} → {last.cos_target:.3f} and to the start {first.cos_source:.3f} → "
        f"{last.cos_source:.3f}; the last generated picture is {verdict}."])


# -- figures --------------------------------------------------------------------------------------------------


def _checkpoint_figure(checkpoints: list[Checkpoint], reference: Reference) -> plt.Figure:
    size = int(round(reference.target.shape[1] ** 0.5))
    rows = min(2, len(reference.starts))
    columns = 2 + len(checkpoints)
    top = float(reference.target.max()) or 1.0
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    for row in range(rows):
        panels = [(reference.target[0], "target"), (reference.starts[row], "start")]
        panels += [(c.images[row], f"it {c.iteration}\ncos T {float(cosine(c.images[row:row + 1], reference.target)):.2f}"
                    f" S {float(cosine(c.images[row:row + 1], reference.starts[row:row + 1])):.2f}")
                   for c in checkpoints]
        for axis, (image, title) in zip(axes[row], panels):
            axis.imshow(image.reshape(size, size).numpy(), cmap="gray", vmin=0, vmax=top, origin="lower")
            axis.set_title(title, fontsize=7)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle("generated pictures at checkpoints (grey scale clipped to the target's range)", fontsize=9)
    figure.tight_layout()
    return figure


def _similarity_figure(checkpoints: list[Checkpoint], facts: dict[str, Any]) -> plt.Figure:
    iterations = [c.iteration for c in checkpoints]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, (metric, baseline) in zip(axes, (("cos", facts["baseline_cos"]), ("iou", facts["baseline_iou"]))):
        axis.plot(iterations, [getattr(c, f"{metric}_target") for c in checkpoints], "o-", label="to target")
        axis.plot(iterations, [getattr(c, f"{metric}_source") for c in checkpoints], "s-", label="to start picture")
        axis.axhline(baseline, color="grey", ls="--", lw=1, label="start vs target (untrained level)")
        axis.set_xscale("symlog", linthresh=5)
        axis.set_xlabel("iteration")
        axis.set_ylabel("cosine similarity" if metric == "cos" else "IoU of binarised pixels")
        legend(axis, fontsize=7)
    figure.tight_layout()
    return figure


def _loss_figure(history: History, facts: dict[str, Any], kind: LossKind, resumed_at: int) -> plt.Figure:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    if history.losses:
        steps = np.arange(resumed_at + 1, resumed_at + 1 + len(history.losses))
        axes[0].semilogy(steps, history.losses, lw=0.8)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("batch loss")
    axes[0].set_title(f"loss ({kind}); last {facts['loss_last']:.3g}, max {facts['loss_max']:.3g}", fontsize=9)
    if history.times:
        t_all = torch.cat(history.times).numpy()
        loss_all = torch.cat(history.per_sample).numpy()
        shown = np.random.default_rng(0).permutation(len(t_all))[:SCATTER_POINTS]
        axes[1].scatter(1 - t_all[shown], loss_all[shown], s=2, alpha=0.3)
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
    axes[1].set_xlabel("1 − t")
    axes[1].set_ylabel("per-sample loss")
    axes[1].set_title(f"t ≥ 0.9 carries {facts['share_t90']:.0%} of the summed loss", fontsize=9)
    figure.tight_layout()
    return figure


register(Recipe(
    name="flattened_flow",
    description="flow matching on 2D distributions rendered into flattened 64×64 images (the failed project)",
    sections={"data": Data, "model": Model, "training": Training, "sampling": Sampling},
    run=run,
))

"""What the flattened case's story needs beyond the probes' findings: the case's settings and the few numbers only
the recipe can measure (the run's own sampler on its own start pictures, the network's output and last layer, the
checkpoints' similarities). Everything a probe measures is quoted from its finding instead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gendiag.quantities.flattened import (LossRange, Peak, binary_iou, cosine, displacement_ratio, loss_range,
                                          loss_share_from, peak, relative_weight_change, unreachable_share)
from gendiag.recipes.flattened.checkpoints import Checkpoint, Reference
from gendiag.recipes.flattened.data import ImageStreams
from gendiag.recipes.schemas.flattened import LossKind

OUTPUT_TIMES = (0.0, 0.5)  # where the story quotes the size of the network's output at a start picture
HIGH_T = 0.9  # the results' loss share is of the draws with t at or above this
WEIGHT_KEY = "weight_distance_from_init"  # the results' names of the two, quoted by the story
SHARE_KEY = f"loss_share_t_above_{HIGH_T:g}_all_iterations"


@dataclass(frozen=True)
class RunFacts:
    """The case's settings and the recipe's own measurements, as the story quotes them."""

    lr: float
    iterations: int  # iterations trained in this process (after a resume, the ones after it)
    resumed_at: int
    loss_kind: LossKind
    frozen: bool
    source: str
    mode: str
    points_per_image: int
    batch_size: int
    dim: int
    last_width: int
    displacement: float  # the final samples' ‖sample − start‖ / ‖target − start‖
    output_norm: dict[float, float]  # mean ‖u_θ(x0, t)‖ at source pictures, at OUTPUT_TIMES
    gap: float  # mean ‖target − start‖: how far the straight path travels
    pair_gap: float  # mean ‖z − x0‖ over pairs of a data and a source picture
    baseline_cos: float  # start pictures against the target before any training
    baseline_iou: float
    unreachable: float  # share of the needed move's energy outside the last layer's span
    losses: LossRange
    peak: Peak
    weight_distance: float  # ‖θ − θ0‖ / ‖θ0‖ at the end: where the weights ended, not the gradients probe's bound
    loss_share_high_t: float  # share of the summed per-sample loss of all iterations carried by t >= HIGH_T

    def results(self) -> dict[str, float]:
        """The results-table entries these measurements give, under names that say what each one is (the story
        quotes the same fields), so that no result repeats a probe's number under another name."""
        return {WEIGHT_KEY: self.weight_distance, SHARE_KEY: self.loss_share_high_t}


def measure(mon: Any, model: torch.nn.Module, streams: ImageStreams, reference: Reference, case: Any,
            checkpoints: list[Checkpoint], losses: list[float], samples: torch.Tensor, starts: torch.Tensor,
            generator: torch.Generator, resumed_at: int, initial: list[torch.Tensor], times: torch.Tensor,
            per_sample_loss: torch.Tensor) -> RunFacts:
    """The recipe's own numbers, measured once at the end of the run (cheap, exact). `initial` holds the weights
    as training started; `times` and `per_sample_loss` are every iteration's draws of t and their losses."""
    probe_data = streams.data(8, generator)
    probe_source = streams.source(8, generator)
    outputs = {t: mon.evaluate("model", probe_source, t) for t in OUTPUT_TIMES}
    last = model.net[-1]
    return RunFacts(
        lr=case.training.lr, iterations=len(losses), resumed_at=resumed_at, loss_kind=case.training.loss,
        frozen=case.sampling.frozen, source=case.data.source, mode=case.data.mode,
        points_per_image=case.data.points_per_image, batch_size=case.training.batch_size, dim=streams.dim,
        last_width=int(case.model.hidden[-1]),
        displacement=displacement_ratio(samples, starts, reference.target),
        output_norm={t: float(out.norm(dim=1).mean()) for t, out in outputs.items()},
        gap=float((reference.target - probe_source).norm(dim=1).mean()),
        pair_gap=float((probe_data - probe_source).norm(dim=1).mean()),
        baseline_cos=float(cosine(reference.starts, reference.target).mean()),
        baseline_iou=float(binary_iou(reference.starts, reference.target, reference.threshold).mean()),
        unreachable=unreachable_share(last.weight, last.bias, reference.target - probe_source),
        losses=loss_range(losses),
        peak=peak([c.iteration for c in checkpoints], [c.cos_target for c in checkpoints],
                  [c.cos_source for c in checkpoints]),
        weight_distance=relative_weight_change(list(model.parameters()), initial),
        loss_share_high_t=loss_share_from(times, per_sample_loss, HIGH_T),
    )

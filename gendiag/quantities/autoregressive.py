"""Autoregressive quantities: the loss by position, which inputs the network's outputs depend on, where its
training targets sit, the values it is fed, and how many generated samples differ.

Positions are read from the watched network's input: a (B, L) batch is L positions (token ids when they are whole
numbers and the output is (B, L, V) logits); a (B, C, H, W) or (B, H, W) image is H·W pixels in raster order, each
of C channels generated in channel order. The output holds one entry (or a vector of them) per position: (B, L, ...)
for sequences, (B, ..., H, W) for images."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

CHUNK = 20  # reported steps averaged into one point of the loss by position
OFFSET_WINDOW = 20  # recorded training calls whose cross-entropies make the target-offset estimate
MAX_LEVELS = 256  # more distinct values than this and the values are read as continuous
TESTED_POSITIONS = 6  # input positions the dependence check perturbs, evenly spaced over the sequence


class PositionLoss:
    """The per-position loss (nats), averaged over rows and over chunks of CHUNK reported steps: the first chunk and
    the latest complete one are kept (the partial chunk stands in until one is complete). Sequences may change
    length from step to step: each position is averaged over the steps that reached it."""

    def __init__(self) -> None:
        self.first: np.ndarray | None = None
        self.latest: np.ndarray | None = None
        self.steps = 0
        self.skipped = 0  # steps whose loss held NaN or infinite values
        self._sum = np.zeros(0)
        self._count = np.zeros(0)
        self._steps_in_chunk = 0

    def add(self, loss: torch.Tensor) -> None:
        """One step's per-position loss: (B, ...) per row and position, or (P,) already averaged over the rows."""
        values = loss.detach().to("cpu", torch.float64)
        values = (values.flatten(1).mean(0) if values.dim() >= 2 else values.reshape(-1)).numpy()
        if not np.isfinite(values).all():
            self.skipped += 1
            return
        self.steps += 1
        self._sum, self._count = _padded(self._sum, len(values)), _padded(self._count, len(values))
        self._sum[:len(values)] += values
        self._count[:len(values)] += 1
        self._steps_in_chunk += 1
        if self._steps_in_chunk == CHUNK:
            self.latest = self._mean()
            self.first = self.latest if self.first is None else self.first
            self._sum, self._count, self._steps_in_chunk = np.zeros(0), np.zeros(0), 0

    def recent(self) -> np.ndarray | None:
        """Mean loss by position over the latest complete chunk (the partial one before any is complete)."""
        if self.latest is not None:
            return self.latest
        return self._mean() if self._steps_in_chunk else None

    def _mean(self) -> np.ndarray:
        return self._sum / np.maximum(self._count, 1)

    def early(self) -> np.ndarray | None:
        """Mean loss by position over the first chunk."""
        return self.first if self.first is not None else self.recent()


class ValueCounts:
    """The distinct values of observed batches and, per position, how often each occurs (while there are at most
    MAX_LEVELS of them; beyond that the values are continuous and only their range is kept)."""

    def __init__(self, per_position: bool = True) -> None:
        self.per_position = per_position
        self.counts: dict[float, np.ndarray] = {}
        self.discrete = True
        self.low = float("inf")
        self.high = float("-inf")
        self.rows = 0

    def add(self, batch: torch.Tensor) -> None:
        flat = batch.detach().to("cpu", torch.float64).reshape(batch.shape[0], -1)
        finite = flat[torch.isfinite(flat)]
        if finite.numel():
            self.low, self.high = min(self.low, float(finite.min())), max(self.high, float(finite.max()))
        self.rows += int(flat.shape[0])
        if not self.discrete:
            return
        levels = torch.unique(finite).tolist()
        if len(set(levels) | set(self.counts)) > MAX_LEVELS:
            self.discrete, self.counts = False, {}
            return
        for level in levels:
            hits = (flat == level).sum(0).numpy() if self.per_position else np.array([float((flat == level).sum())])
            kept = _padded(self.counts.get(level, np.zeros(0)), len(hits))
            kept[:len(hits)] += hits
            self.counts[level] = kept

    def levels(self) -> np.ndarray | None:
        """The sorted distinct values, or None for continuous values (or none seen)."""
        return np.array(sorted(self.counts)) if self.discrete and self.counts else None

    def entropy(self) -> np.ndarray | None:
        """Plug-in entropy (nats) of the value at each position: the loss of the best model that ignores context."""
        if not self.discrete or not self.counts or not self.per_position:
            return None
        width = max(len(counts) for counts in self.counts.values())
        table = np.stack([_padded(self.counts[level], width) for level in sorted(self.counts)], axis=1)
        share = table / np.maximum(table.sum(1, keepdims=True), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.nansum(np.where(share > 0, share * np.log(share), 0.0), axis=1)


def _padded(values: np.ndarray, length: int) -> np.ndarray:
    """`values` (float) extended with zeros to at least `length`."""
    return np.concatenate([values.astype(np.float64), np.zeros(max(0, length - len(values)))])


def off_level_share(values: torch.Tensor, levels: np.ndarray, tolerance: float) -> float:
    """Share of `values` farther than `tolerance` (times the levels' span) from every one of `levels`."""
    flat = values.detach().to("cpu", torch.float64).reshape(-1)
    grid = torch.as_tensor(levels, dtype=torch.float64)
    span = float(grid.max() - grid.min()) or 1.0
    nearest = torch.bucketize(flat, grid).clamp(1, len(grid) - 1) if len(grid) > 1 else torch.zeros_like(flat).long()
    gap = torch.minimum((flat - grid[nearest]).abs(), (flat - grid[(nearest - 1).clamp(min=0)]).abs())
    return float((gap > tolerance * span).double().mean()) if flat.numel() else 0.0


def distinct_rows(batch: torch.Tensor) -> int:
    """How many different rows (samples) `batch` holds, by exact equality."""
    return int(torch.unique(batch.detach().cpu().reshape(batch.shape[0], -1), dim=0).shape[0])


def top_shares(batch: torch.Tensor, count: int = 10) -> np.ndarray:
    """The share of `batch`'s rows taken by each of its `count` most frequent distinct rows, largest first."""
    flat = batch.detach().cpu().reshape(batch.shape[0], -1)
    _, counts = torch.unique(flat, dim=0, return_counts=True)
    return (counts.sort(descending=True).values[:count].double() / max(batch.shape[0], 1)).numpy()


def layout(x: torch.Tensor, output: torch.Tensor) -> str | None:
    """How positions sit in a call: "tokens" (whole-number (B, L) ids, (B, L, V) logits), "sequence" ((B, L) values,
    output (B, L, ...)), "image" ((B, C, H, W) or (B, H, W), output (B, ..., H, W)); None for anything else."""
    if x.dim() == 2 and output.dim() >= 2 and output.shape[1] == x.shape[1]:
        whole = bool((x == x.round()).all()) and float(x.min()) >= 0
        return "tokens" if whole and output.dim() == 3 and output.shape[-1] > float(x.max()) else "sequence"
    if x.dim() in (3, 4) and output.dim() >= 3 and output.shape[-2:] == x.shape[-2:]:
        return "image"
    return None


def by_position(values: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, P, K): a call's input or output with its positions on axis 1 and whatever each position holds after."""
    if kind == "image":
        flat = values.reshape(values.shape[0], -1, values.shape[-2] * values.shape[-1])
        return flat.transpose(1, 2)
    return values.reshape(values.shape[0], values.shape[1], -1)


@dataclass
class Dependence:
    """How the network's outputs move when inputs change, at `positions` (input positions, raster order): `own[j]`
    is the mean |change| of the output at every position when the inputs from positions[j] on change (for images:
    the last channel of that pixel and every later pixel), `later[j]` when only those strictly after it change;
    `scale` the RMS spread of the unperturbed output."""

    step: int
    kind: str
    positions: list[int]
    own: np.ndarray
    later: np.ndarray
    scale: float


def perturbed(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Every input value changed to another valid one: token ids to the next id among those seen, other values
    reflected within their observed range (0 <-> 1 for binary pixels)."""
    if kind == "tokens":
        count = int(x.max()) + 1
        return (x + 1) % count if count > 1 else x + 1
    low, high = x.min(), x.max()
    return low + high - x if bool(high > low) else x + 1


def dependence(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, kind: str, step: int) -> Dependence:
    """Run the network (`run`, which must not touch training state) on the training rows `x` and on copies where the
    inputs from a tested position on change, or only those after it; a causal network's outputs at positions before
    the changed ones do not move. Each run draws the same random numbers (a network that samples inside its forward
    pass is compared with itself), from a forked generator: torch's global one is left as it was."""
    other = perturbed(x, kind)
    run = _same_draws(run)
    base = run(x)
    out = by_position(base.double(), kind)
    count = by_position(x, kind).shape[1]
    positions = sorted({int(p) for p in np.linspace(0, count - 1, min(TESTED_POSITIONS, count)).round()})
    own, later = [], []
    for p in positions:
        for include_own, sink in ((True, own), (False, later)):
            changed = _replace_from(x, other, p, include_own, kind)
            moved = (by_position(run(changed).double(), kind) - out).abs().mean(dim=(0, 2))
            sink.append(moved.numpy())
    scale = float((out - out.mean()).pow(2).mean().sqrt())
    return Dependence(step=step, kind=kind, positions=positions, own=np.stack(own), later=np.stack(later),
                      scale=scale)


def _same_draws(run: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def seeded(x: torch.Tensor) -> torch.Tensor:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return run(x)
    return seeded


def _replace_from(x: torch.Tensor, other: torch.Tensor, p: int, include_own: bool, kind: str) -> torch.Tensor:
    changed = x.clone()
    if kind == "image":
        flat, source = changed.view(x.shape[0], -1, x.shape[-2] * x.shape[-1]), other.reshape(
            x.shape[0], -1, x.shape[-2] * x.shape[-1])
        flat[:, :, p + 1:] = source[:, :, p + 1:]
        if include_own:
            flat[:, -1, p] = source[:, -1, p]
        return changed
    start = p if include_own else p + 1
    changed[:, start:] = other[:, start:]
    return changed


@dataclass
class TargetOffset:
    """Cross-entropy of the recorded training outputs against the network's own inputs at the same position (offset
    0) and at the next one (offset 1), over the last OFFSET_WINDOW recorded calls. A trained network predicts its
    targets, so the lower one says where its targets sit: a PixelCNN predicts the pixel at its own position, a
    language model fed x[:, :-1] the next token. Readable for token logits and for binary values with one logit per
    position; otherwise nothing is recorded."""

    ce: dict[int, deque] = field(default_factory=lambda: {0: deque(maxlen=OFFSET_WINDOW),
                                                          1: deque(maxlen=OFFSET_WINDOW)})

    def add(self, x: torch.Tensor, output: torch.Tensor, kind: str) -> None:
        found = offset_cross_entropy(x, output, kind)
        if found is not None:
            for offset, value in found.items():
                self.ce[offset].append(value)

    def means(self) -> dict[int, float] | None:
        if not self.ce[0]:
            return None
        return {offset: float(np.mean(values)) for offset, values in self.ce.items()}


def offset_cross_entropy(x: torch.Tensor, output: torch.Tensor, kind: str) -> dict[int, float] | None:
    """{0: CE of the output at i against input i, 1: against input i + 1} for one call, or None where the output
    cannot be read as a distribution over the input's values."""
    if x.shape[0] == 0 or not bool(torch.isfinite(output).all()):
        return None
    if kind == "tokens":
        tokens = x.long()
        if int(tokens.max()) >= output.shape[-1] or x.shape[1] < 2:
            return None
        logp = torch.log_softmax(output.double(), dim=-1)
        return {0: float(-logp.gather(-1, tokens[..., None]).mean()),
                1: float(-logp[:, :-1].gather(-1, tokens[:, 1:, None]).mean())}
    levels = torch.unique(x)
    if len(levels) != 2 or output.numel() != x.numel():
        return None
    target = by_position((x == levels[1]).double(), kind).reshape(x.shape[0], -1)
    logits = by_position(output.double(), kind).reshape(x.shape[0], -1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return {0: float(bce(logits, target)), 1: float(bce(logits[:, :-1], target[:, 1:]))}


@dataclass
class NetworkCheck:
    """One watched network: its position layout, every dependence check run on it, its offset cross-entropies."""

    model: str
    kind: str
    checks: list[Dependence]
    offsets: dict[int, float] | None


@dataclass
class Summary:
    """What the autoregressive rules read: the latest mean loss by position and how many steps it rests on, the
    data's entropy where the user gave it (nats per position: one number or one per position), the networks'
    checks, the off-level share of the sampler's last inputs of each sampling run (with the positions per row) and
    of the observed samples, and the distinct rows among the samples and among as many data rows."""

    loss: np.ndarray | None = None
    loss_steps: int = 0
    entropy: np.ndarray | None = None
    networks: list[NetworkCheck] = field(default_factory=list)
    levels: list[float] | None = None
    sampling_off_level: list[float] = field(default_factory=list)
    sampling_positions: int = 0
    samples_off_level: float | None = None
    samples: int = 0
    samples_distinct: int = 0
    data_distinct: int | None = None
    data_compared: int = 0

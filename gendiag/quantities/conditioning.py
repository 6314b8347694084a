"""Conditions as class labels, and whether samples follow theirs, measured without a trained classifier.

A condition is read as a class label: integer labels (B,) or (B, 1), or one-hot rows (B, K) (their argmax). For the
null condition of classifier-free guidance, a call that passed no condition counts as `NONE` and an all-zero one-hot
row as `ZEROS`. Other conditions (text embeddings, continuous values) are not labels: they are not counted.

Agreement: each sample is assigned the class most common among its `NEIGHBOURS` nearest data rows (the data kept per
class, flattened, projected on its first `COMPONENTS` principal axes when wider), or the class a user's classifier
gives; the agreement rate is the share of samples assigned the class they were asked for. The data's own rate, each
data row assigned from the other rows, is what a model that follows its condition can reach; chance is 1/#classes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch

NONE = "none"  # a call that passed no condition
ZEROS = "zeros"  # an all-zero one-hot row
NEIGHBOURS = 10
COMPONENTS = 16
ROWS_PER_CLASS = 256  # data rows kept per class
MAX_SAMPLES = 2000  # labelled samples kept (those of the last step they were observed at)


def label_keys(cond: torch.Tensor | None, rows: int) -> list[Hashable] | None:
    """One key per row: an int label, `NONE` for every row of a call without a condition (`cond` None), `ZEROS` for
    an all-zero one-hot row; None where `cond` does not read as labels."""
    if cond is None:
        return [NONE] * rows
    labels = class_labels(cond)
    if labels is not None:
        return [int(v) for v in labels.tolist()]
    if cond.dim() == 2 and cond.shape[1] > 1 and _one_hot_or_zero(cond):
        zero = cond.abs().sum(1) == 0
        picked = cond.argmax(1)
        return [ZEROS if z else int(v) for z, v in zip(zero.tolist(), picked.tolist())]
    return None


def class_labels(cond: torch.Tensor) -> torch.Tensor | None:
    """Integer class labels (B,) from labels (B,) or (B, 1) holding whole numbers, or from one-hot rows (B, K);
    None for anything else (an all-zero row included)."""
    flat = cond.reshape(len(cond), -1) if cond.dim() > 1 else cond.reshape(-1, 1)
    if flat.shape[1] == 1:
        values = flat[:, 0]
        if values.is_floating_point() and not bool((values == values.round()).all()):
            return None
        return values.round().long() if values.is_floating_point() else values.long()
    if cond.dim() == 2 and _one_hot_or_zero(cond) and bool((cond.abs().sum(1) == 1).all()):
        return cond.argmax(1)
    return None


def _one_hot_or_zero(cond: torch.Tensor) -> bool:
    values = cond.float()
    return bool(((values == 0) | (values == 1)).all()) and bool((values.sum(1) <= 1).all())


@dataclass
class LabelCounts:
    """Rows per condition key in the recorded calls of one network, in training and in sampling."""

    train: Counter = field(default_factory=Counter)
    sampling: Counter = field(default_factory=Counter)
    unreadable: int = 0  # calls whose condition did not read as labels

    def add(self, mode: str, keys: list[Hashable] | None) -> None:
        if keys is None:
            self.unreadable += 1
            return
        (self.train if mode == "train" else self.sampling).update(keys)


@dataclass
class ConditionedData:
    """Data rows kept per class (up to ROWS_PER_CLASS, the first seen) and the labelled samples of the last step they
    were observed at (up to MAX_SAMPLES)."""

    rows: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    kept: Counter = field(default_factory=Counter)
    samples: list[torch.Tensor] = field(default_factory=list)
    sample_labels: list[torch.Tensor] = field(default_factory=list)
    sample_step: int | None = None
    unreadable: int = 0  # batches whose condition did not read as labels
    seen: int = 0  # rows given, data and samples: the key of a cached measurement

    def add_data(self, batch: torch.Tensor, labels: torch.Tensor) -> None:
        self.seen += len(batch)
        for label in labels.unique().tolist():
            room = ROWS_PER_CLASS - self.kept[label]
            if room <= 0:
                continue
            chosen = batch[labels == label][:room].detach().float().cpu()
            self.rows.setdefault(label, []).append(chosen)
            self.kept[label] += len(chosen)

    def add_samples(self, samples: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        self.seen += len(samples)
        if step != self.sample_step:
            self.samples, self.sample_labels, self.sample_step = [], [], step
        room = MAX_SAMPLES - sum(len(s) for s in self.samples)
        if room > 0:
            self.samples.append(samples[:room].detach().float().cpu())
            self.sample_labels.append(labels[:room].cpu())

    def data(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Every kept data row and its label, or None before two classes were seen."""
        if len(self.rows) < 2:
            return None
        rows = [torch.cat(chunks) for chunks in self.rows.values()]
        labels = [torch.full((len(r),), label, dtype=torch.long) for label, r in zip(self.rows, rows)]
        return torch.cat(rows), torch.cat(labels)


@dataclass(frozen=True)
class Agreement:
    """How often samples land in the class they were asked for, against the data's own rate and chance."""

    method: str  # "nearest neighbours" or "classifier"
    classes: int
    samples: int  # labelled samples whose class has data
    sample_rate: float
    data_rate: float
    chance: float
    per_class: dict[int, dict[str, Any]]  # asked class -> {"samples", "rate", "most_assigned"}
    data_rows_per_class: int = 0  # the fewest data rows kept of any class

    @property
    def score(self) -> float | None:
        """(sample rate − chance) / (data rate − chance): 1 follows the condition as well as the data does, 0 no
        better than chance, below 0 systematically another class; None where the data's rate is at chance."""
        room = self.data_rate - self.chance
        return None if room <= 0 else (self.sample_rate - self.chance) / room


def measure_agreement(store: ConditionedData,
                      classifier: Callable[[torch.Tensor], Any] | None = None) -> Agreement | None:
    """The agreement of the kept samples with their labels and of the data with its own (None without data of two
    classes; no samples counted where none of a class with data was observed)."""
    data = store.data()
    if data is None:
        return None
    rows, labels = data
    samples = torch.cat(store.samples) if store.samples else rows[:0]
    asked = torch.cat(store.sample_labels) if store.samples else labels[:0]
    known = torch.isin(asked, labels.unique())
    samples, asked = samples[known], asked[known]
    if classifier is not None:
        method = "classifier"
        data_assigned, assigned = _classify(classifier, rows), _classify(classifier, samples)
    else:
        method = "nearest neighbours"
        data_features, sample_features = _features(rows, samples)
        data_assigned = _knn_labels(data_features, labels, data_features, leave_one_out=True)
        assigned = _knn_labels(data_features, labels, sample_features, leave_one_out=False)
    hits = (assigned == asked).float()
    per_class = {}
    for label in asked.unique().tolist():
        mine = asked == label
        most = Counter(assigned[mine].tolist()).most_common(1)[0][0]
        per_class[int(label)] = {"samples": int(mine.sum()), "rate": round(float(hits[mine].mean()), 4),
                                 "most_assigned": int(most)}
    return Agreement(method=method, classes=int(labels.unique().numel()), samples=len(samples),
                     sample_rate=float(hits.mean()) if len(hits) else 0.0,
                     data_rate=float((data_assigned == labels).float().mean()),
                     chance=1.0 / int(labels.unique().numel()), per_class=per_class,
                     data_rows_per_class=min(store.kept.values()))


def _features(rows: torch.Tensor, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and samples flattened, centred on the data mean, projected on the data's first COMPONENTS principal axes
    where wider."""
    rows, samples = rows.flatten(1).double(), samples.flatten(1).double()
    if rows.shape[1] != samples.shape[1]:
        raise ValueError(f"conditioning: samples have {samples.shape[1]} values per row, the data {rows.shape[1]}")
    mean = rows.mean(0)
    rows, samples = rows - mean, samples - mean
    if rows.shape[1] > COMPONENTS:
        axes = torch.linalg.svd(rows, full_matrices=False).Vh[:COMPONENTS]
        rows, samples = rows @ axes.T, samples @ axes.T
    return rows, samples


def _knn_labels(reference: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor,
                leave_one_out: bool) -> torch.Tensor:
    """The majority label of each query's NEIGHBOURS nearest reference rows (itself left out for the reference's own
    rows); ties go to the nearest row's label among the tied."""
    distances = torch.cdist(queries, reference)
    if leave_one_out:
        distances.fill_diagonal_(float("inf"))
    k = min(NEIGHBOURS, len(reference) - int(leave_one_out))
    nearest = distances.topk(k, largest=False).indices
    votes = labels[nearest]
    classes = labels.unique()
    counts = (votes[:, :, None] == classes[None, None, :]).sum(1).double()
    counts += (votes[:, :1] == classes[None, :]).double() * 0.5  # the nearest row breaks ties
    return classes[counts.argmax(1)]


def _classify(classifier: Callable[[torch.Tensor], Any], rows: torch.Tensor) -> torch.Tensor:
    output = torch.as_tensor(classifier(rows)).detach().cpu()
    if output.dim() == 2:
        return output.argmax(1)
    if output.dim() == 1:
        return output.long()
    raise ValueError(f"conditioning: the classifier must return labels (N,) or scores (N, C), got shape "
                     f"{tuple(output.shape)}")

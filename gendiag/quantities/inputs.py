"""Training versus sampling inputs of a watched network, per bin of t: the energy distance between them over the
data–source distance, its permutation test and energy coefficient, where each set's mean sits between the source
mean and the data mean, and how much the training inputs change between the lowest and the highest bin of t."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from gendiag.flow.reservoir import Reservoir
from gendiag.metrics.energy import energy_coefficient, energy_distance, energy_test

if TYPE_CHECKING:
    import pandas as pd

ROWS_PER_TRAIN_CALL = 8
BINS = 5
MIN_ROWS_PER_BIN = 12
PERMUTATIONS = 200
MAX_ROWS_PER_BIN = 256
KEPT_INPUT_ROWS = 2048  # 2-D input rows kept per network and mode: ~400 a bin, over the MAX_ROWS_PER_BIN compared
SEED = 11


@dataclass(frozen=True)
class InputsComparison:
    """One network's training and sampling inputs compared: `reference` is the data–source energy distance (None
    without observed data and source of the input size), `table` one row per bin of t (see `per_bin`),
    `t_change` the training inputs' change over t (see `t_change`; None without a reference or two filled bins)."""

    model: str
    reference: float | None
    table: "pd.DataFrame"
    t_change: dict[str, Any] | None
    crossed: dict[str, Any] | None = None  # see `crossed_ends`


def compare_inputs(model: str, train: Reservoir, sampling: Reservoir, data: Reservoir | None,
                   source: Reservoir | None) -> InputsComparison:
    """The comparison of `train` and `sampling` rows (with their times), drawing permutations from a generator
    seeded with SEED, so the same rows give the same numbers however often it is asked."""
    generator = torch.Generator().manual_seed(SEED)
    reference = reference_distance(data, source, train.rows.shape[1])
    table = per_bin(train, sampling, reference, data, source, generator)
    change = t_change(train, table, reference, generator) if reference else None
    crossed = crossed_ends(train, sampling, table, reference) if reference else None
    return InputsComparison(model, reference, table, change, crossed)


def reference_distance(data: Reservoir | None, source: Reservoir | None, dim: int) -> float | None:
    """Energy distance between observed data and source rows of the network's input size, if both exist."""
    if data is None or source is None or len(data) < 2 or len(source) < 2:
        return None
    data_rows, source_rows = data.rows, source.rows
    if data_rows.shape[1] != dim or source_rows.shape[1] != dim:
        return None
    distance = energy_distance(data_rows[:MAX_ROWS_PER_BIN * 2], source_rows[:MAX_ROWS_PER_BIN * 2])
    return distance if distance > 0 else None


def per_bin(train: Reservoir, sampling: Reservoir, reference: float | None, data: Reservoir | None,
             source: Reservoir | None, generator: torch.Generator) -> "pd.DataFrame":
    """One row per bin of t: rows seen, energy distance, ratio to the data-source distance, progress of the means."""
    import pandas as pd

    t_train, t_sampling = train.times, sampling.times
    low = float(torch.cat([t_train, t_sampling]).min())
    high = float(torch.cat([t_train, t_sampling]).max())
    edges = torch.linspace(low, high if high > low else low + 1, BINS + 1)
    axis = progress_axis(data, source, train.rows.shape[1])
    records = []
    for index in range(BINS):
        lo, hi = float(edges[index]), float(edges[index + 1])
        last = index == BINS - 1
        in_train = (t_train >= lo) & ((t_train <= hi) if last else (t_train < hi))
        in_sampling = (t_sampling >= lo) & ((t_sampling <= hi) if last else (t_sampling < hi))
        a, b = train.rows[in_train][:MAX_ROWS_PER_BIN], sampling.rows[in_sampling][:MAX_ROWS_PER_BIN]
        energy = p_value = ratio = coefficient = progress_a = progress_b = float("nan")
        if len(a) >= MIN_ROWS_PER_BIN and len(b) >= MIN_ROWS_PER_BIN:
            energy, p_value = energy_test(a, b, PERMUTATIONS, generator)
            ratio = energy / reference if reference else float("nan")
            coefficient = energy_coefficient(a, b, energy)
            if axis is not None:
                progress_a, progress_b = axis(a), axis(b)
        records.append({"bin": index, "t_low": lo, "t_high": hi, "rows_train": int(in_train.sum()),
                        "rows_sampling": int(in_sampling.sum()), "energy": energy, "p_value": p_value, "ratio": ratio,
                        "coefficient": coefficient,
                        "progress_train": progress_a, "progress_sampling": progress_b})
    return pd.DataFrame.from_records(records)


def t_change(train: Reservoir, table: "pd.DataFrame", reference: float,
              generator: torch.Generator) -> dict[str, Any] | None:
    """How much the training inputs of the lowest and the highest populated bin of t differ, over the
    data-source distance (about 1 for any path from source to data; about 0 when the inputs ignore t)."""
    filled = table[table["rows_train"] >= MIN_ROWS_PER_BIN]
    if len(filled) < 2:
        return None
    first, last = filled.iloc[0], filled.iloc[-1]
    rows = []
    for row in (first, last):
        inside = (train.times >= row["t_low"]) & (train.times <= row["t_high"])
        rows.append(train.rows[inside][:MAX_ROWS_PER_BIN])
    energy, p_value = energy_test(rows[0], rows[1], PERMUTATIONS, generator)
    return {"ratio": energy / reference, "energy": energy, "p_value": p_value,
            "low_bin": [float(first["t_low"]), float(first["t_high"])],
            "high_bin": [float(last["t_low"]), float(last["t_high"])],
            "progress_low": number(first["progress_train"]), "progress_high": number(last["progress_train"])}


def crossed_ends(train: Reservoir, sampling: Reservoir, table: "pd.DataFrame",
                 reference: float) -> dict[str, Any] | None:
    """The sampling inputs of each end bin of t (the lowest and the highest where both sets have rows) against the
    training inputs of the other end, over the data-source distance: small where the sampler runs t the other way
    round from training (it starts from the source at the end where training holds the data). None with fewer than
    two such bins."""
    filled = table[(table["rows_train"] >= MIN_ROWS_PER_BIN) & (table["rows_sampling"] >= MIN_ROWS_PER_BIN)]
    if len(filled) < 2:
        return None
    ends = (filled.iloc[0], filled.iloc[-1])

    def rows(reservoir: Reservoir, row: Any) -> torch.Tensor:
        inside = (reservoir.times >= row["t_low"]) & (reservoir.times <= row["t_high"])
        return reservoir.rows[inside][:MAX_ROWS_PER_BIN]

    crossed = {}
    for name, here, there in (("low", ends[0], ends[1]), ("high", ends[1], ends[0])):
        crossed[name] = {"bin": [float(here["t_low"]), float(here["t_high"])],
                         "other_bin": [float(there["t_low"]), float(there["t_high"])],
                         "ratio": float(here["ratio"]),
                         "crossed_ratio": energy_distance(rows(sampling, here), rows(train, there)) / reference}
    return crossed


def progress_axis(data: Reservoir | None, source: Reservoir | None, dim: int) -> Any:
    """A function placing a set's mean on the source-to-data line, or None when the two means are too close
    (less than a quarter of the data's spread apart) for the position to mean anything."""
    if data is None or source is None or len(data) < 2 or len(source) < 2:
        return None
    if data.rows.shape[1] != dim or source.rows.shape[1] != dim:
        return None
    start, end = source.rows.double().mean(0), data.rows.double().mean(0)
    direction = end - start
    spread = float((data.rows.double() - end).pow(2).sum(1).mean().sqrt())
    length2 = float(direction.pow(2).sum())
    if length2 ** 0.5 < 0.25 * spread:
        return None
    return lambda rows: float((rows.double().mean(0) - start) @ direction / length2)


def number(value: Any) -> float | None:
    """A table cell as a float rounded to 4 places, None for a missing one."""
    return None if value is None or math.isnan(float(value)) else round(float(value), 4)

"""Generated samples against the data rows the loop showed: a reservoir of data rows (uniform over all rows of all
batches, at most `MAX_ROWS` rows and 2^21 numbers, its own seeded generator), the last samples (at most
`KEEP_SAMPLES` rows and 2^21 numbers, 8 MB: a comparison uses at most half as many as there are data rows), and their
`SampleGap` (`gendiag.metrics.samples_vs_data`), cached on what has been gathered since it was computed."""

from __future__ import annotations

import copy

import torch

from gendiag.flow.reservoir import Reservoir, capacity_for
from gendiag.metrics.samples_vs_data import MIN_SAMPLES, SampleGap, compare_to_data

MAX_ROWS = 2048
KEEP_SAMPLES = 2048
DATA_SEED = 43  # the reservoir's generator
COMPARE_SEED = 41  # the data subsets of the floors: the same draws at every computation


def samples_kept(numel: int) -> int:
    """How many of the last samples are kept, for samples of `numel` numbers each (also what one rank sends rank 0
    under torchrun)."""
    return capacity_for(numel, KEEP_SAMPLES, KEEP_SAMPLES)


def spread(rows: torch.Tensor) -> float:
    """RMS distance of the rows to their mean."""
    rows = rows.double()
    return float((rows - rows.mean(0)).pow(2).sum(1).mean().sqrt())


class SamplesAgainstData:
    """Data rows kept and the last samples observed (flattened, float32, on the CPU)."""

    def __init__(self) -> None:
        self.data: Reservoir | None = None
        self.samples: torch.Tensor | None = None
        self.samples_step: int | None = None
        self._gathered = 0  # calls that added data or samples: the key of the cached gap
        self._gap: tuple[int, SampleGap] | None = None

    def add_data(self, batch: torch.Tensor) -> None:
        if self.data is None:
            self.data = Reservoir(capacity_for(int(batch[0].numel()), MAX_ROWS, MAX_ROWS), seed=DATA_SEED)
        self.data.add(batch)
        self._gathered += 1

    def add_samples(self, samples: torch.Tensor, step: int) -> dict[str, float]:
        """Keep the first `samples_kept` samples; returns their scale against the data's (std ratio, mean offset in
        data spreads), or {} when there are no comparable data rows yet."""
        keep = samples_kept(int(samples[0].numel()))
        self.samples = samples[:keep].detach().reshape(min(len(samples), keep), -1).float().cpu()
        self.samples_step = step
        self._gathered += 1
        data = self.data.rows if self.data is not None else None
        if data is None or len(data) < 2 or data.shape[1] != self.samples.shape[1]:
            return {}
        scale = spread(data)
        if not scale > 0:
            return {}
        return {"std_ratio": spread(self.samples) / scale,
                "mean_offset": float((self.samples.mean(0) - data.mean(0)).norm()) / scale}

    def combined(self, data: Reservoir | None, samples: torch.Tensor | None, step: int | None) -> None:
        """Hold the data rows and the samples of every rank (merged at `finish`, `gendiag.distributed`) in place of
        this process's."""
        self.data, self.samples, self.samples_step = data, samples, step
        self._gathered += 1

    def why_not(self) -> str | None:
        """Why the samples cannot be compared with the data (one clause), or None when they can."""
        return self._why_not(None if self.data is None else self._kept_rows())

    def gap(self) -> SampleGap | None:
        """The samples against the kept rows, or None where `why_not` names a reason; computed once per new samples
        or new data."""
        if self._gap is None or self._gap[0] != self._gathered:
            rows = None if self.data is None else self._kept_rows()
            if self._why_not(rows) is not None:
                return None
            generator = torch.Generator().manual_seed(COMPARE_SEED)
            self._gap = (self._gathered, compare_to_data(self.samples, rows, generator))
        return self._gap[1]

    def _kept_rows(self) -> torch.Tensor:
        """The kept rows in the order the reservoir reads them back, read from a copy: reading shuffles a reservoir
        that is still filling, with its own generator, and asking for findings must change nothing."""
        return copy.deepcopy(self.data).rows

    def _why_not(self, rows: torch.Tensor | None) -> str | None:
        if self.samples is None:
            return "no samples were observed"
        if rows is None or len(rows) < 2 * MIN_SAMPLES:
            return (f"{0 if rows is None else len(rows)} data rows were observed (`observe_data(batch, "
                    f"role=\"data\")`), {2 * MIN_SAMPLES} are needed")
        if len(self.samples) < MIN_SAMPLES:
            return f"{len(self.samples)} samples were observed, {MIN_SAMPLES} are needed"
        if self.samples.shape[1] != rows.shape[1]:
            return f"the samples have {self.samples.shape[1]} values each and the data rows {rows.shape[1]}"
        if spread(rows) == 0:
            return "every data row kept is the same"
        return None

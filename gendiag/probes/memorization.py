"""Memorization: generated samples that are near-copies of training samples.

Facts it reads: `reference=data` (held-out real samples, never trained on). It keeps the training batches the
loop shows through `observe_data(role="data")` (distinct rows, up to a memory cap, by reservoir sampling with its
own generator) and the last `observe_samples` batch. At the end it compares each generated sample's distance to
its nearest training sample with the held-out samples' distances, relative to the training set's local spacing
(`gendiag.metrics.memorization`), and counts near-duplicate pairs among the generated samples against the same
count among as many held-out samples (the birthday-paradox test).

Finding `memorization`: at least 10% of the generated samples (and at least 5 times the share expected from a
generator that generalizes) are near-copies, and the Mann-Whitney z of the data-copying test is below -3.
Only training rows the probe saw can be found copied: the section says how many it saw.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding, advice
from gendiag.metrics.memorization import Memorization, birthday_support, duplicate_pairs, memorization
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COPY_QUANTILE = 0.01  # a near-copy: closer (relative to local spacing) than 99% of held-out samples
COPY_SHARE_MIN = 0.10
COPY_SHARE_FACTOR = 5.0  # times the expected share COPY_QUANTILE
Z_COPYING = -3.0
MAX_TRAIN_ROWS = 10_000
MAX_TRAIN_VALUES = 20_000_000  # float32 values kept (80 MB) however wide the rows
MAX_COMPARED = 2_500  # generated and held-out samples compared
PAIRS_SHOWN = 6
_FEWER = ("The model reproduces its training data: use more data or augmentation, a smaller model or fewer epochs "
          "(stop at the best held-out loss), weight decay or dropout")
ADVICE = {  # `memorization`, by task
    "vae": _FEWER + "; check that the KL term is not switched off (without it the VAE is an autoencoder).",
    "gan": _FEWER + "; a discriminator that memorises the data set drives this: augment what D sees (ADA).",
    "diffusion": _FEWER + ": a denoiser fitted exactly to few samples leads every sample back to one of them.",
    "flow": _FEWER + ": the exact velocity field of few samples carries every sample onto one of them.",
    "generic": _FEWER + ".",
}


@register
class MemorizationProbe(Probe):
    """Nearest-training-sample distances of generated vs held-out samples, near-duplicates; `memorization`."""

    name = "memorization"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.reference: torch.Tensor | None = None
        self.train: torch.Tensor | None = None  # reservoir of training rows, flattened float32
        self.train_shape: tuple[int, ...] | None = None
        self.rows_seen = 0
        self.samples: torch.Tensor | None = None
        self.samples_step: int | None = None
        self.generator = torch.Generator().manual_seed(0)
        self.result: Memorization | None = None
        self.duplicates: dict[str, Any] = {}
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        reference = ctx.facts.get("reference")  # checked by gendiag.facts when the Monitor was built
        if reference is not None:
            self.reference = reference.detach().float().cpu()

    def on_data(self, ctx: ProbeContext, batch: torch.Tensor, role: str) -> None:
        if self.reference is None or role != "data":
            return
        rows = batch.detach().float().cpu()
        self.train_shape = tuple(rows.shape[1:])
        rows = rows.reshape(len(rows), -1)
        capacity = max(2, min(MAX_TRAIN_ROWS, MAX_TRAIN_VALUES // rows.shape[1]))
        if self.train is None:
            self.train = torch.empty(0, rows.shape[1])
        if rows.shape[1] != self.train.shape[1]:
            raise ValueError(f"memorization: training batches changed width from {self.train.shape[1]} to "
                             f"{rows.shape[1]} values per sample")
        free = capacity - len(self.train)
        if free > 0:
            self.train = torch.cat([self.train, rows[:free]])
        rest = rows[max(free, 0):]
        if len(rest):  # reservoir sampling: row number n replaces a kept row with probability capacity / n
            numbers = self.rows_seen + max(free, 0) + torch.arange(1, len(rest) + 1)
            slots = (torch.rand(len(rest), generator=self.generator) * numbers).long()
            keep = slots < capacity
            slots, rest = slots[keep], rest[keep]
            # of the rows that drew one slot, the last one offered holds it (index_put leaves ties undefined)
            last = torch.full((capacity,), -1, dtype=torch.long).scatter_reduce_(
                0, slots, torch.arange(len(slots)), "amax")
            filled = last >= 0
            self.train[filled] = rest[last[filled]]
        self.rows_seen += len(rows)

    def on_samples(self, ctx: ProbeContext, samples: torch.Tensor, step: int) -> None:
        if self.reference is not None:
            self.samples = samples.detach().float().cpu()
            self.samples_step = step

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if self.reference is None:
            return None
        missing = [what for what, value in (("training batches (observe_data)", self.train),
                                            ("generated samples (observe_samples)", self.samples)) if value is None]
        if missing:
            return ProbeSection(title="Memorization", text=f"Not measured: no {' and no '.join(missing)} were seen.")
        train = np.unique(self.train.numpy(), axis=0)
        generated = self._subset(self.samples.reshape(len(self.samples), -1))
        heldout = self._subset(self.reference.reshape(len(self.reference), -1))
        if not (generated.shape[1] == heldout.shape[1] == train.shape[1]):
            raise ValueError(f"memorization: generated samples, reference and training data differ in size per "
                             f"sample: {generated.shape[1]}, {heldout.shape[1]}, {train.shape[1]}")
        self.result = memorization(generated, train, heldout, copy_quantile=COPY_QUANTILE)
        self.duplicates = self._duplicates(generated, heldout)
        self.figure = ctx.save_figure(self._figure(generated, train), "memorization")
        result = self.result
        text = (f"Compared {len(generated)} generated samples (step {self.samples_step}) and {len(heldout)} held-out "
                f"real samples with the {len(train)} distinct training rows kept of {self.rows_seen} seen. "
                f"Median distance to the nearest training sample: generated {np.median(result.generated_distance):.4g}"
                f", held-out {np.median(result.heldout_distance):.4g} (ratio {result.median_distance_ratio:.3f}). "
                f"Near-copies (closer, relative to the local spacing of the training set, than "
                f"{1 - COPY_QUANTILE:.0%} of held-out samples): {result.copy_share:.1%} of generated samples "
                f"(about {COPY_QUANTILE:.0%} expected); data-copying test z = {result.mann_whitney_z:.2f} "
                f"(below {Z_COPYING:g}: copying). Near-duplicate pairs at distance below "
                f"{self.duplicates['threshold']:.4g}: {self.duplicates['generated_pairs']} among generated, "
                f"{self.duplicates['heldout_pairs']} among {self.duplicates['n']} held-out samples.")
        return ProbeSection(title="Memorization: generated samples against the training set", text=text,
                            figures=[self.figure])

    def _subset(self, values: torch.Tensor) -> np.ndarray:
        if len(values) > MAX_COMPARED:
            values = values[torch.randperm(len(values), generator=self.generator)[:MAX_COMPARED]]
        return values.numpy()

    def _duplicates(self, generated: np.ndarray, heldout: np.ndarray) -> dict[str, Any]:
        """Near-duplicate pairs among generated samples and among as many held-out samples, at the held-out
        samples' 1% quantile of distance to the training set."""
        n = min(len(generated), len(heldout))
        threshold = float(np.quantile(self.result.heldout_distance, COPY_QUANTILE))
        if not threshold > 0:
            return {"threshold": threshold, "n": n, "generated_pairs": 0, "heldout_pairs": 0,
                    "support_estimate": math.inf}
        generated_pairs = duplicate_pairs(generated[:n], threshold)
        return {"threshold": threshold, "n": n, "generated_pairs": generated_pairs,
                "heldout_pairs": duplicate_pairs(heldout[:n], threshold),
                "support_estimate": birthday_support(n, generated_pairs)}

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        result = self.result
        if result is None:
            return []
        share, z = result.copy_share, result.mann_whitney_z
        if share < max(COPY_SHARE_MIN, COPY_SHARE_FACTOR * COPY_QUANTILE) or z > Z_COPYING:
            return []
        closest = np.argsort(result.generated_ratio)[:PAIRS_SHOWN]
        evidence = {
            "step": self.samples_step, "copy_share": round(share, 4), "expected_copy_share": COPY_QUANTILE,
            "copy_ratio_threshold": result.copy_threshold, "mann_whitney_z": round(z, 2),
            "median_distance_generated": float(np.median(result.generated_distance)),
            "median_distance_heldout": float(np.median(result.heldout_distance)),
            "median_distance_ratio": round(result.median_distance_ratio, 4),
            "n_generated": len(result.generated_distance), "n_heldout": len(result.heldout_distance),
            "training_rows_seen": self.rows_seen, **{f"duplicates_{k}": v for k, v in self.duplicates.items()},
            "closest_generated_to_train": [[int(i), int(result.nearest_train[i]), float(result.generated_distance[i])]
                                           for i in closest],
        }
        return [Finding(
            code="memorization", severity="critical" if share > 0.5 else "warning",
            title=f"{share:.0%} of generated samples are near-copies of training samples",
            message=(f"{share:.1%} of {len(result.generated_distance)} generated samples (step {self.samples_step}) "
                     f"lie closer to a training sample, relative to the training set's local spacing, than 99% of "
                     f"held-out real samples do ({COPY_QUANTILE:.0%} expected for a generator that generalizes). "
                     f"The data-copying test agrees: z = {z:.1f} (below {Z_COPYING:g}); median distance to the "
                     f"training set {evidence['median_distance_generated']:.4g} for generated samples against "
                     f"{evidence['median_distance_heldout']:.4g} for held-out ones."),
            evidence=evidence, figure=self.figure,
            suggestion=advice(ADVICE, ctx.task),
        )]

    def state(self) -> dict[str, Any]:
        if self.result is None:
            return {}
        return {"copy_share": self.result.copy_share, "mann_whitney_z": self.result.mann_whitney_z,
                "median_distance_ratio": self.result.median_distance_ratio, "training_rows_seen": self.rows_seen,
                "duplicate_pairs_generated": self.duplicates.get("generated_pairs")}

    def _figure(self, generated: np.ndarray, train: np.ndarray) -> Figure:
        result = self.result
        images = self.train_shape is not None and len(self.train_shape) == 3 and self.train_shape[0] in (1, 3)
        figure, axes = new_figure(1, 2, figsize=(12, 4.2))
        bins = np.geomspace(max(min(result.generated_ratio.min(), result.heldout_ratio.min()), 1e-6),
                            max(result.generated_ratio.max(), result.heldout_ratio.max(), 1e-5), 40)
        for values, label, color in ((result.heldout_ratio, "held-out real", "tab:green"),
                                     (result.generated_ratio, "generated", "tab:red")):
            axes[0].hist(np.clip(values, bins[0], None), bins=bins, alpha=0.6, label=label, color=color,
                         weights=np.full(len(values), 1 / len(values)))
        axes[0].set_ylabel("share of samples")
        axes[0].axvline(result.copy_threshold, color="black", ls="--", lw=1, label="copy threshold")
        axes[0].set_xscale("log")
        axes[0].set_xlabel("distance to nearest training sample / that sample's own neighbour distance")
        axes[0].set_title(f"Near-copies: {result.copy_share:.1%} of generated (z = {result.mann_whitney_z:.1f})")
        legend(axes[0], fontsize=8)
        closest = np.argsort(result.generated_ratio)[:PAIRS_SHOWN]
        if images:
            channels, height, width = self.train_shape
            grid = np.ones((2 * height + 1, len(closest) * (width + 1), channels))
            for j, index in enumerate(closest):
                for row, source in enumerate((generated[index], train[result.nearest_train[index]])):
                    image = source.reshape(channels, height, width).transpose(1, 2, 0)
                    low, high = image.min(), image.max()
                    image = (image - low) / (high - low) if high > low else np.zeros_like(image)
                    top, left = row * (height + 1), j * (width + 1)
                    grid[top:top + height, left:left + width] = image
            axes[1].imshow(grid.squeeze(-1) if channels == 1 else grid, cmap="gray", vmin=0, vmax=1)
            axes[1].axis("off")
            axes[1].set_title("Closest generated samples (top) and their nearest training samples (bottom)")
        else:
            axes[1].scatter(train[:, 0], train[:, 1], s=2, color="tab:gray", alpha=0.4, label="training (kept)")
            copies = result.copies
            axes[1].scatter(generated[~copies, 0], generated[~copies, 1], s=3, color="tab:blue", alpha=0.5,
                            label="generated")
            axes[1].scatter(generated[copies, 0], generated[copies, 1], s=6, color="tab:red", label="near-copies")
            axes[1].set_title("Generated samples over the training data (first two coordinates)")
            legend(axes[1], fontsize=8)
        figure.tight_layout()
        return figure

"""Mode collapse: which known modes (or classes) the generator covers, observation by observation.

Facts it reads: `modes=centers` (K, D) with `mode_std=s` (one number or one per mode) for data with known modes,
and/or `classifier=fn` (images -> class labels, or class scores) with `n_classes` (or a classifier that has an
`n_classes` attribute, as `gendiag.metrics.classifier.DigitClassifier` does). Without either it stays silent.

On every `observe_samples` it computes PacGAN's known-mode metrics (`gendiag.metrics.modes`) and/or the class
coverage (`gendiag.metrics.classes`) and keeps a timeline.

Finding `mode-collapse`: at the last observation some modes (classes) have no high-quality sample (no sample),
with enough samples that a generator covering all of them evenly would miss one with probability below 1%, or
the reverse KL of the histogram against uniform is above 0.2 nats and too large to be sampling noise (the G-test:
2 n KL against the 99% quantile of chi-squared with K - 1 degrees of freedom, n the histogram's samples).
The finding lists the dropped modes and the step since which each has been missing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.stats import chi2

from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding, advice
from gendiag.metrics.classes import class_coverage
from gendiag.metrics.modes import HIGH_QUALITY_STDS, mode_metrics
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection
from gendiag.rows import RowPicker, take_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KL_HIGH = 0.2  # nats: reverse KL of the mode/class histogram against uniform above this is an imbalance
MISS_CHANCE = 0.01  # an even generator would miss some mode with at most this probability
KL_NOISE_QUANTILE = 0.99  # G-test level: a KL this far above uniform is not sampling noise
KEEP_SAMPLES = 2500  # samples of the last observation kept for the figure
ADVICE = {  # `mode-collapse`, by task
    "gan": ("Let the discriminator see several samples at once (PacGAN packing, or minibatch discrimination), or "
            "train with WGAN-GP; lower the learning rates (Adam β1 = 0.5) and keep D from overpowering G."),
    "vae": ("Look at the latent code: if the posterior collapsed (the decoder ignores z), lower the KL weight or "
            "anneal it from 0, use free bits, or weaken the decoder so that it must use z; draw samples by decoding "
            "z from the same N(0, I) prior the KL term pulls the posterior toward."),
    "diffusion": ("Train longer (rare modes are learned last), sample with more steps and from the same schedule "
                  "as training, starting from N(0, I) at the last step (check that the schedule reaches noise); "
                  "with guidance, lower the guidance scale."),
    "flow": ("Train longer (rare modes are learned last), integrate with more steps or a higher-order solver, "
             "starting from the same noise as training; with guidance, lower the guidance scale."),
    "generic": ("Check how samples are drawn (the prior or noise they start from, the number of sampling steps) and "
                "train longer: rare modes are learned last."),
}
SAMPLES_PER_CLASS_SHOWN = 8


def miss_chance(n_modes: int, n_samples: int) -> float:
    """Upper bound (union bound) on the probability that n samples spread evenly over n_modes miss some mode."""
    return min(1.0, n_modes * (1.0 - 1.0 / n_modes) ** n_samples) if n_modes > 1 else 0.0


@register
class ModeCollapseProbe(Probe):
    """Modes (or classes) captured over training, high-quality share, reverse KL; `mode-collapse`."""

    name = "mode-collapse"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.centers: np.ndarray | None = None
        self.stds: np.ndarray | None = None
        self.classifier: Any = None
        self.n_classes: int | None = None
        self.mode_timeline: list[dict[str, Any]] = []
        self.class_timeline: list[dict[str, Any]] = []
        self.last_samples: torch.Tensor | None = None
        self.last_labels: np.ndarray | None = None
        self.picker = RowPicker(seed=0)
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        facts = ctx.facts  # checked by gendiag.facts when the Monitor was built
        if facts.get("modes") is not None:
            centers = np.asarray(torch.as_tensor(facts["modes"]).detach().cpu(), dtype=np.float64)
            stds = np.asarray(facts["mode_std"], dtype=np.float64)
            self.centers = centers
            self.stds = np.full(len(centers), float(stds)) if stds.ndim == 0 else stds
            ctx.add_chart("modes", "modes captured and reverse KL",
                          ["modes/captured", "modes/high_quality_share", "modes/reverse_kl"])
        if facts.get("classifier") is not None:
            self.classifier = facts["classifier"]
            self.n_classes = int(facts.get("n_classes") or self.classifier.n_classes)
            ctx.add_chart("classes", "classes found and balance",
                          ["classes/found", "classes/largest_share", "classes/kl_uniform"])

    def on_samples(self, ctx: ProbeContext, samples: torch.Tensor, step: int) -> None:
        if self.centers is None and self.classifier is None:
            return
        shown = self.picker.indices(len(samples), KEEP_SAMPLES)  # at random: a sampler may return modes in order
        self.last_samples = take_rows(samples.detach(), shown).float().cpu()
        if self.centers is not None:
            flat = samples.detach().float().cpu().reshape(len(samples), -1)
            metrics = mode_metrics(flat, self.centers, self.stds)
            self.mode_timeline.append({
                "step": step, "n_samples": len(samples), "captured": metrics.captured.tolist(),
                "modes_captured": metrics.modes_captured, "high_quality_share": metrics.high_quality_share,
                "reverse_kl": metrics.reverse_kl, "counts": metrics.counts.tolist(),
            })
            ctx.log_scalar("modes/captured", metrics.modes_captured, step)
            ctx.log_scalar("modes/high_quality_share", metrics.high_quality_share, step)
            if math.isfinite(metrics.reverse_kl):
                ctx.log_scalar("modes/reverse_kl", metrics.reverse_kl, step)
        if self.classifier is not None:
            labels = self._labels(samples)
            coverage = class_coverage(labels, self.n_classes)
            self.last_labels = labels if shown is None else labels[shown.numpy()]
            self.class_timeline.append({
                "step": step, "n_samples": len(samples), "captured": coverage.found.tolist(),
                "classes_found": coverage.classes_found, "largest_share": coverage.largest_share,
                "kl_uniform": coverage.kl_to_uniform, "counts": coverage.counts.tolist(),
            })
            ctx.log_scalar("classes/found", coverage.classes_found, step)
            ctx.log_scalar("classes/largest_share", coverage.largest_share, step)
            ctx.log_scalar("classes/kl_uniform", coverage.kl_to_uniform, step)

    def _labels(self, samples: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            output = torch.as_tensor(self.classifier(samples.detach())).detach().cpu()
        if output.dim() == 2:
            output = output.argmax(dim=1)
        if output.shape != (len(samples),) or output.is_floating_point():
            raise ValueError(f"mode-collapse: classifier must return integer labels (N,) or scores (N, C), got "
                             f"dtype {output.dtype} and shape {tuple(output.shape)} for {len(samples)} samples")
        return output.numpy().astype(np.int64)

    # -- report -------------------------------------------------------------------------------------

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not self.mode_timeline and not self.class_timeline:
            return None
        self.figure = ctx.save_figure(self._figure(), "mode_collapse")
        lines = []
        if self.mode_timeline:
            last = self.mode_timeline[-1]
            lines.append(
                f"Known modes: {len(self.centers)}; {len(self.mode_timeline)} observations. At step {last['step']} "
                f"({last['n_samples']} samples): {last['modes_captured']} of {len(self.centers)} modes captured "
                f"(a high-quality sample within {HIGH_QUALITY_STDS:g} std), high-quality share "
                f"{last['high_quality_share']:.1%}, reverse KL(P_gen || uniform) of the high-quality histogram "
                f"{_fmt(last['reverse_kl'])} nats (0: balanced; log K = {math.log(len(self.centers)):.2f}: one mode).")
        if self.class_timeline:
            last = self.class_timeline[-1]
            lines.append(
                f"Classes (from the classifier): {self.n_classes}; {len(self.class_timeline)} observations. At step "
                f"{last['step']} ({last['n_samples']} samples): {last['classes_found']} of {self.n_classes} classes "
                f"found, largest class share {last['largest_share']:.1%}, KL(P_gen || uniform) "
                f"{_fmt(last['kl_uniform'])} nats.")
        return ProbeSection(title="Mode collapse: modes and classes covered over training", text="\n\n".join(lines),
                            figures=[self.figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        found = [self._finding(self.mode_timeline, "mode", "reverse_kl", len(self.centers), ctx.task)
                 if self.mode_timeline else None,
                 self._finding(self.class_timeline, "class", "kl_uniform", self.n_classes, ctx.task)
                 if self.class_timeline else None]
        return [f for f in found if f is not None]

    def _finding(self, timeline: list[dict[str, Any]], unit: str, kl_key: str, n_units: int,
                 task: str) -> Finding | None:
        last = timeline[-1]
        chance = miss_chance(n_units, last["n_samples"])
        dropped = [k for k, captured in enumerate(last["captured"]) if not captured]
        kl = last[kl_key]
        judged_dropped = dropped if chance <= MISS_CHANCE else []
        in_histogram = int(sum(last["counts"]))
        kl_noise = float(chi2.ppf(KL_NOISE_QUANTILE, n_units - 1)) / (2 * max(in_histogram, 1))
        kl_high = kl > max(KL_HIGH, kl_noise)
        if not judged_dropped and not kl_high:
            return None
        since = {k: _missing_since(timeline, k) for k in dropped}
        never = [k for k in dropped if not any(entry["captured"][k] for entry in timeline)]
        covered = n_units - len(dropped)
        plural = "classes" if unit == "class" else "modes"
        evidence: dict[str, Any] = {
            "step": last["step"], "n_samples": last["n_samples"], f"n_{plural}": n_units,
            f"{plural}_covered": covered, f"dropped_{plural}": dropped,
            "missing_since_step": {str(k): since[k] for k in dropped},
            "never_found" if unit == "class" else "never_captured": never,
            "reverse_kl" if unit == "mode" else "kl_to_uniform": kl, "kl_threshold": KL_HIGH,
            "kl_sampling_noise_99": round(kl_noise, 4), "samples_in_histogram": in_histogram,
            "chance_even_generator_misses_one": round(chance, 6),
            "timeline_steps": [entry["step"] for entry in timeline],
            f"{plural}_covered_over_time": [int(sum(entry["captured"])) for entry in timeline],
        }
        if unit == "mode":
            evidence["high_quality_share"] = last["high_quality_share"]
        else:
            evidence["largest_share"] = last["largest_share"]
        parts = []
        if dropped:
            by_step: dict[int, list[int]] = {}
            for k in dropped:
                by_step.setdefault(since[k], []).append(k)
            listed = "; ".join(f"{unit} {', '.join(map(str, ks))} since step {s}" for s, ks in sorted(by_step.items()))
            parts.append(f"{len(dropped)} of {n_units} {plural} have no {'high-quality ' if unit == 'mode' else ''}"
                         f"sample: {listed}" + (f" ({len(never)} never covered at any observation)" if never else "")
                         + ".")
            if chance > MISS_CHANCE:
                parts.append(f"(With {last['n_samples']} samples an even generator would also miss one with "
                             f"probability {chance:.0%}, so the dropped {plural} alone are not conclusive.)")
        kl_text = "reverse KL(P_gen || uniform)" if unit == "mode" else "KL(P_gen || uniform)"
        parts.append(f"The {kl_text} of the {unit} histogram is {_fmt(kl)} nats "
                     f"(threshold {max(KL_HIGH, kl_noise):.3f}, the larger of {KL_HIGH} and the 99% sampling noise of "
                     f"{in_histogram} samples; {math.log(n_units):.2f} when everything falls on one {unit}).")
        severe = covered <= n_units / 2 or not math.isfinite(kl)
        return Finding(
            code="mode-collapse", severity="critical" if severe else "warning",
            title=(f"Mode collapse: {covered} of {n_units} {plural} covered at step {last['step']}"
                   + (f", {kl_text} {_fmt(kl)}" if kl_high else "")),
            message=f"At step {last['step']} ({last['n_samples']} generated samples): " + " ".join(parts),
            evidence=evidence, figure=self.figure,
            suggestion=advice(ADVICE, task),
        )

    def state(self) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        if self.mode_timeline:
            last = self.mode_timeline[-1]
            summary.update({"modes_captured": last["modes_captured"], "n_modes": len(self.centers),
                            "high_quality_share": last["high_quality_share"],
                            "reverse_kl": _plain(last["reverse_kl"])})
        if self.class_timeline:
            last = self.class_timeline[-1]
            summary.update({"classes_found": last["classes_found"], "n_classes": self.n_classes,
                            "largest_class_share": last["largest_share"],
                            "class_kl_uniform": _plain(last["kl_uniform"])})
        return summary

    # -- figure -------------------------------------------------------------------------------------

    def _figure(self) -> Figure:
        rows = [t for t in (self.mode_timeline, self.class_timeline) if t]
        figure, axes = new_figure(len(rows), 3, figsize=(15, 4.4 * len(rows)), squeeze=False)
        row = 0
        if self.mode_timeline:
            _timeline_axes(axes[row, 0], axes[row, 1], self.mode_timeline, "mode")
            self._modes_scatter(axes[row, 2])
            row += 1
        if self.class_timeline:
            _timeline_axes(axes[row, 0], axes[row, 1], self.class_timeline, "class")
            self._class_samples(axes[row, 2])
        figure.tight_layout()
        return figure

    def _modes_scatter(self, axis: Axes) -> None:
        from matplotlib.patches import Circle

        points = self.last_samples.reshape(len(self.last_samples), -1).numpy()
        captured = np.asarray(self.mode_timeline[-1]["captured"])
        axis.scatter(points[:, 0], points[:, 1], s=3, alpha=0.35, color="tab:blue", label="samples")
        for k, (center, std) in enumerate(zip(self.centers, self.stds)):
            color = "tab:green" if captured[k] else "tab:red"
            axis.add_patch(Circle(center[:2], HIGH_QUALITY_STDS * std, fill=False, color=color, lw=1.2))
        axis.scatter(*self.centers[captured, :2].T, marker="+", color="tab:green", label="captured mode")
        axis.scatter(*self.centers[~captured, :2].T, marker="x", color="tab:red", label="dropped mode")
        for k in np.flatnonzero(~captured):
            axis.annotate(str(k), self.centers[k, :2], color="tab:red", fontsize=8, xytext=(3, 3),
                          textcoords="offset points")
        axis.set_aspect("equal", adjustable="datalim")
        axis.set_title(f"Samples at step {self.mode_timeline[-1]['step']} over the modes "
                       f"(circles: {HIGH_QUALITY_STDS:g} std)")
        legend(axis, loc="upper right", fontsize=7)

    def _class_samples(self, axis: Axes) -> None:
        samples = self.last_samples
        axis.set_title(f"Samples at step {self.class_timeline[-1]['step']}, one row per predicted class")
        axis.axis("off")
        if samples.dim() != 4 or samples.shape[1] not in (1, 3):
            axis.text(0.5, 0.5, "samples are not (N, C, H, W) images", ha="center", va="center")
            return
        images = samples.permute(0, 2, 3, 1).numpy()
        low, high = float(images.min()), float(images.max())
        images = (images - low) / (high - low) if high > low else np.zeros_like(images)
        height, width, channels = images.shape[1:]
        grid = np.ones((self.n_classes * (height + 1), SAMPLES_PER_CLASS_SHOWN * (width + 1), channels))
        for c in range(self.n_classes):
            for j, index in enumerate(np.flatnonzero(self.last_labels == c)[:SAMPLES_PER_CLASS_SHOWN]):
                top, left = c * (height + 1), j * (width + 1)
                grid[top:top + height, left:left + width] = images[index]
        axis.imshow(grid.squeeze(-1) if channels == 1 else grid, cmap="gray", vmin=0, vmax=1)
        for c in range(self.n_classes):
            axis.text(-2, c * (height + 1) + height / 2, str(c), ha="right", va="center", fontsize=7)


def _missing_since(timeline: list[dict[str, Any]], k: int) -> int:
    """Step of the first observation of the final unbroken run in which `k` was not covered."""
    since = timeline[-1]["step"]
    for entry in reversed(timeline):
        if entry["captured"][k]:
            break
        since = entry["step"]
    return since


def _timeline_axes(count_axis: Axes, map_axis: Axes, timeline: list[dict[str, Any]], unit: str) -> None:
    steps = [entry["step"] for entry in timeline]
    covered = np.array([entry["captured"] for entry in timeline], dtype=float)  # (T, K)
    plural = "classes" if unit == "class" else "modes"
    count_axis.plot(steps, covered.sum(axis=1), marker="o", ms=3, color="tab:blue")
    count_axis.axhline(covered.shape[1], color="gray", ls="--", lw=1, label=f"all {covered.shape[1]} {plural}")
    count_axis.set_ylim(-0.5, covered.shape[1] + 0.5)
    count_axis.set_xlabel("step")
    count_axis.set_ylabel(f"{plural} covered")
    count_axis.set_title(f"{plural.capitalize()} covered over training")
    legend(count_axis, loc="lower right", fontsize=8)
    edges = np.arange(len(steps) + 1) - 0.5
    map_axis.pcolormesh(edges, np.arange(covered.shape[1] + 1) - 0.5, covered.T, cmap="RdYlGn", vmin=0, vmax=1,
                        shading="flat")
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int))
    map_axis.set_xticks(ticks, [str(steps[i]) for i in ticks])
    map_axis.set_xlabel("observation (step)")
    map_axis.set_ylabel(unit)
    map_axis.set_title(f"Which {plural} are covered (green) or missing (red)")


def _fmt(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "inf (no high-quality sample)"


def _plain(value: float) -> float | None:
    return value if math.isfinite(value) else None

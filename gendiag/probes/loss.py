"""The training loss over steps: running mean and spread, the trend over windows, spikes, oscillation that grows,
non-finite values.

Per step it appends one float (and updates an exponential running mean and variance, logged to TensorBoard on a
thinning stride); the window statistics, the rules and the figure run in `finish`.

Findings:
- `loss-nonfinite` (critical): the loss was NaN or infinite at some step.
- `loss-diverging` (warning; info for GANs, whose losses are not minimised): after its lowest window the loss
  trends up to at least twice that level (or blows up tenfold in some window), or its step-to-step oscillation
  grows at least fourfold over the run.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding, advice
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection
from gendiag.probes.thinning import LogStride

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WINDOWS = 10
MIN_POINTS = 50  # fewer finite losses than this: too short to call a trend
RUNNING_DECAY = 0.98  # exponential running mean and variance (about 50 steps of memory)
RISE = 1.0  # last window above the best by this many times the best level: a sustained rise
RISE_TAU = 0.5  # Kendall's tau of the window medians from the best window on
BLOWUP = 9.0  # a window this many times the best level above it: a blow-up
OSCILLATION_GROWTH = 4.0
SPIKE_MADS = 10.0


@register
class LossProbe(Probe):
    """Running mean and variance of the loss, its trend, spikes and non-finite values."""

    name = "loss"

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.steps = array("q")
        self.values = array("d")
        self.first_nonfinite: int | None = None
        self.nonfinite = 0
        self.running_mean: float | None = None
        self.running_var = 0.0
        self.last_finite_step = 0
        self.stride = LogStride(first=250)
        self.logged_at: int | None = None
        self.summary: dict[str, Any] = {}
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("loss", "loss with running mean and spread",
                      ["loss/train", "loss/running_mean", "loss/running_std"])

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        if record.loss is None or not self.due(record.step):
            return
        value = record.loss
        self.steps.append(record.step)
        self.values.append(value)
        if not math.isfinite(value):
            self.nonfinite += 1
            if self.first_nonfinite is None:
                self.first_nonfinite = record.step
            return
        if self.running_mean is None:
            self.running_mean = value
        else:
            delta = value - self.running_mean
            self.running_mean += (1 - RUNNING_DECAY) * delta
            self.running_var = RUNNING_DECAY * (self.running_var + (1 - RUNNING_DECAY) * delta * delta)
        self.last_finite_step = record.step
        if self.stride.take(record.step):
            self._log_running(ctx, record.step)

    def _log_running(self, ctx: ProbeContext, step: int) -> None:
        ctx.log_scalar("loss/running_mean", self.running_mean, step)
        ctx.log_scalar("loss/running_std", math.sqrt(self.running_var), step)
        self.logged_at = step

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not self.values:
            return None
        if self.running_mean is not None and self.logged_at != self.last_finite_step:  # short runs get a point
            self._log_running(ctx, self.last_finite_step)
        steps = np.frombuffer(self.steps, dtype=np.int64)
        values = np.frombuffer(self.values, dtype=np.float64)
        finite = np.isfinite(values)
        self.summary = _summarise(steps[finite], values[finite])
        self.summary.update(recorded=len(values), nonfinite=self.nonfinite, first_nonfinite_step=self.first_nonfinite)
        self.figure = ctx.save_figure(_figure(steps, values, self.summary, self.first_nonfinite), "loss_curve")
        return ProbeSection(title="Loss", text=_text(self.summary), figures=[self.figure],
                            table=self.summary.get("table"))

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        found: list[Finding] = []
        if self.first_nonfinite is not None:
            found.append(_nonfinite_finding(self.summary, self.figure, ctx.task))
        if self.summary.get("diverging"):
            found.append(_diverging_finding(self.summary, self.figure, ctx.task))
        return found

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in self.summary.items() if k != "table"}


def _summarise(steps: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    """Window medians and oscillation, the trend rules and spikes, for the finite losses."""
    summary: dict[str, Any] = {"finite": len(values), "diverging": False}
    if len(values) == 0:
        return summary
    summary.update(first_loss=float(values[0]), last_loss=float(values[-1]), min_loss=float(values.min()),
                   last_finite_step=int(steps[-1]))
    if len(values) < MIN_POINTS:
        return summary
    windows = np.array_split(np.arange(len(values)), WINDOWS)
    medians = np.array([np.median(values[w]) for w in windows])
    swings = np.array([np.median(np.abs(np.diff(values[w]))) for w in windows])
    spreads = np.array([np.subtract(*np.percentile(values[w], [75, 25])) for w in windows])
    best = int(np.argmin(medians))
    scale = max(abs(medians[best]), spreads[best], 1e-12)
    rise = (medians[-1] - medians[best]) / scale
    peak = int(best + np.argmax(medians[best:]))
    blowup = (medians[peak] - medians[best]) / scale
    tau = float(kendalltau(np.arange(WINDOWS - best), medians[best:]).statistic) if best <= WINDOWS - 3 else 0.0
    calm = int(np.argmin(swings))
    growth = swings[-1] / max(swings[calm], 1e-12)
    trend_up = rise >= RISE and tau >= RISE_TAU
    blew_up = blowup >= BLOWUP and peak > best
    oscillating = growth >= OSCILLATION_GROWTH and calm < WINDOWS - 1 and medians[-1] > medians[best]
    deviations = np.concatenate([np.abs(values[w] - np.median(values[w])) for w in windows])
    mads = np.concatenate([np.full(len(w), np.median(np.abs(values[w] - np.median(values[w])))) for w in windows])
    spikes = steps[deviations > SPIKE_MADS * np.maximum(mads, 1e-12)]
    edges = [(int(steps[w[0]]), int(steps[w[-1]])) for w in windows]
    summary.update(
        diverging=bool(trend_up or blew_up or oscillating), trend_up=bool(trend_up), blew_up=bool(blew_up),
        oscillation_grows=bool(oscillating), best_window=edges[best], best_median=float(medians[best]),
        last_median=float(medians[-1]), peak_window=edges[peak], peak_median=float(medians[peak]),
        rise=float(rise), trend_tau=tau, oscillation_growth=float(growth), calm_window=edges[calm],
        spikes=len(spikes), spike_steps=[int(s) for s in spikes[:20]],
        table=pd.DataFrame({"steps": [f"{a}–{b}" for a, b in edges], "median": medians, "IQR": spreads,
                            "median step-to-step change": swings}).set_index("steps"),
    )
    return summary


NONFINITE_ADVICE = {  # `loss-nonfinite`, by task
    "gan": ("Lower the learning rates or clip gradients; compute the losses from D's logits (BCEWithLogitsLoss), not "
            "log(D(x)) of a sigmoid output, which is log 0 once D saturates."),
    "vae": ("Lower the learning rate or clip gradients; keep the log-variances bounded (clamp or softplus) so that "
            "exp(logvar) cannot overflow, and compute a Bernoulli likelihood from logits (BCEWithLogitsLoss)."),
    "generic": ("Lower the learning rate or clip gradients (torch.nn.utils.clip_grad_norm_); look for a division by a "
                "quantity that reaches 0 (1 - t, sigma, a norm) or a log of 0 in the loss."),
}
_TARGET_HINT = ("Lower the learning rate (or check that the scheduler does not raise it), clip gradient norms, and "
                "check the findings on the loss by t: a target that explodes makes the loss jump.")
DIVERGING_ADVICE = {  # `loss-diverging`, by task
    "flow": _TARGET_HINT,
    "diffusion": _TARGET_HINT,
    "gan": ("Judge a GAN by its samples and the balance of D and G rather than by a rising loss; if the samples "
            "worsen too, lower both learning rates (Adam β1 = 0.5) and regularise D (spectral normalization, "
            "gradient penalty)."),
    "vae": ("Lower the learning rate (or check that the scheduler does not raise it), clip gradient norms, and keep "
            "the log-variances bounded (clamp or softplus): exp of a large logvar makes the loss jump."),
    "generic": "Lower the learning rate (or check that the scheduler does not raise it) and clip gradient norms.",
}


def _nonfinite_finding(summary: dict[str, Any], figure: str | None, task: str) -> Finding:
    first = summary["first_nonfinite_step"]
    last = summary.get("last_loss")
    return Finding(
        code="loss-nonfinite", severity="critical",
        title=f"The loss became NaN or infinite at step {first}",
        message=(f"{summary['nonfinite']} of {summary['recorded']} recorded losses are NaN or infinite, the first at "
                 f"step {first}. " + (f"The last finite loss was {last:.4g}" if last is not None else
                                      "No finite loss was recorded") +
                 (f" and the loss had risen to {summary['peak_median']:.4g} (median of a window) from a best of "
                  f"{summary['best_median']:.4g}." if summary.get("blew_up") or summary.get("trend_up") else ".")),
        evidence={"first_nonfinite_step": first, "nonfinite_steps": summary["nonfinite"],
                  "recorded_steps": summary["recorded"], "last_finite_loss": last,
                  "last_finite_step": summary.get("last_finite_step")},
        suggestion=advice(NONFINITE_ADVICE, task),
        figure=figure,
    )


def _diverging_finding(summary: dict[str, Any], figure: str | None, task: str) -> Finding:
    best, last = summary["best_median"], summary["last_median"]
    reasons = []
    if summary["trend_up"]:
        reasons.append(f"after its lowest window (steps {summary['best_window'][0]}–{summary['best_window'][1]}, "
                       f"median {best:.4g}) the loss trends up to a median of {last:.4g} in the last window "
                       f"(Kendall tau {summary['trend_tau']:.2f} over the window medians)")
    if summary["blew_up"]:
        reasons.append(f"in steps {summary['peak_window'][0]}–{summary['peak_window'][1]} the window median reached "
                       f"{summary['peak_median']:.4g}, {summary['peak_median'] / best if best else math.inf:.3g}× "
                       f"the best {best:.4g}")
    if summary["oscillation_grows"]:
        reasons.append(f"the step-to-step swing of the loss grew {summary['oscillation_growth']:.3g}× from its "
                       f"calmest window (steps {summary['calm_window'][0]}–{summary['calm_window'][1]}) to the last")
    gan = task == "gan"
    return Finding(
        code="loss-diverging", severity="info" if gan else "warning",
        title="The loss grows instead of falling",
        message=_sentence("; ".join(reasons)) + (
            " (A GAN's losses are not minimised, so this is only noted.)" if gan else ""),
        evidence={k: summary[k] for k in ("best_window", "best_median", "last_median", "peak_window", "peak_median",
                                           "rise", "trend_tau", "oscillation_growth", "spikes")},
        suggestion=advice(DIVERGING_ADVICE, task),
        figure=figure,
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _figure(steps: np.ndarray, values: np.ndarray, summary: dict[str, Any], first_bad: int | None) -> Figure:
    figure, axis = new_figure(figsize=(8, 3.6))
    series = pd.Series(np.where(np.isfinite(values), values, np.nan), index=steps)
    window = max(5, len(series) // 50)
    mean = series.rolling(window, min_periods=1, center=True).mean()
    std = series.rolling(window, min_periods=2, center=True).std().fillna(0.0)
    stride = max(1, len(series) // 20_000)
    axis.plot(series.index[::stride], series.to_numpy()[::stride], lw=0.6, alpha=0.45, color="tab:blue",
              label="loss")
    axis.plot(mean.index, mean.to_numpy(), lw=1.6, color="tab:blue", label=f"running mean ({window} steps)")
    axis.fill_between(mean.index, (mean - std).to_numpy(), (mean + std).to_numpy(), color="tab:blue", alpha=0.15,
                      label="± running std")
    finite = series.dropna()
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 20:
        axis.set_yscale("log")
    if first_bad is not None:
        axis.axvline(first_bad, color="tab:red", ls="--", label=f"first NaN/inf (step {first_bad})")
    if summary.get("diverging"):
        axis.axvspan(*summary["best_window"], color="tab:green", alpha=0.1, label="lowest window")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    legend(axis, fontsize=8, loc="best")
    figure.tight_layout()
    return figure


def _text(summary: dict[str, Any]) -> str:
    if not summary.get("finite"):
        return f"No finite loss among the {summary['recorded']} recorded steps."
    lines = [f"{summary['finite']} finite losses: first {summary['first_loss']:.4g}, last {summary['last_loss']:.4g}, "
             f"lowest {summary['min_loss']:.4g}."]
    if summary["nonfinite"]:
        lines.append(f"{summary['nonfinite']} NaN or infinite losses, the first at step "
                     f"{summary['first_nonfinite_step']}.")
    if "best_median" in summary:
        lines.append(f"Over {WINDOWS} windows the median is lowest at steps {summary['best_window'][0]}–"
                     f"{summary['best_window'][1]} ({summary['best_median']:.4g}) and {summary['last_median']:.4g} "
                     f"in the last; the step-to-step swing of the last window is {summary['oscillation_growth']:.3g}× "
                     f"that of the calmest. {summary['spikes']} spikes (more than {SPIKE_MADS:g} median absolute "
                     "deviations from their window's median).")
    return " ".join(lines)

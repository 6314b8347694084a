"""The balance of a GAN's two players: the discriminator on real and on fake batches, its accuracy, both losses
and both networks' gradient norms, step by step.

It reads what the training loop hands to `Monitor.step`: `d_real`, `d_fake` (the discriminator's outputs on the
real and the fake batch, tensors), `d_output` ("prob", "logit" or "critic"), the scalars `loss_d`, `loss_g` and,
where the loop measures them right after each backward, `grad_norm_d`, `grad_norm_g`.

Findings:
- `gan-d-dominates`: for a sustained stretch D calls almost every fake a fake (median D(fake) < 0.1) with
  accuracy near 1; the generator then learns from a saturated discriminator.
- `gan-oscillation`: the losses swing (after removing per-step noise and slow drift) with an amplitude that grows
  over the run, in both losses: the players chase each other instead of converging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from gendiag.context import ProbeContext
from gendiag.figures import legend, new_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe, StepRecord
from gendiag.report.section import ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

D_OUTPUTS = ("prob", "logit", "critic")
FAKE_NEAR_ZERO = 0.1  # median D(fake) below this: the fakes are rejected
ACCURACY_NEAR_ONE = 0.9
MIN_STRETCH_STEPS = 20
MIN_STRETCH_SHARE = 0.2  # of the recorded steps
GRAD_VANISHED = 0.1  # G's gradient norm in the stretch against before it
OSC_SEGMENTS = 5
OSC_GROWTH = 2.0  # last segment's swing against the first's
OSC_RANK_CORRELATION = 0.7
OSC_MIN_AMPLITUDE = 0.05  # nats: swings smaller than this are not worth a finding
OSC_MIN_STEPS = 100


@register
class GanBalanceProbe(Probe):
    """D(real), D(fake), D accuracy, losses and gradient norms of both networks; `gan-d-dominates`,
    `gan-oscillation`."""

    name = "gan-balance"
    tasks = ("gan",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.rows: list[dict[str, float]] = []
        self.d_output: str | None = None
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        balance = ["gan/d_real", "gan/d_fake", "train/loss_d", "train/loss_g", "train/grad_norm_d",
                   "train/grad_norm_g"]
        ctx.add_chart("GAN balance", "D/G balance: D(real), D(fake), losses, grad norms", balance)
        ctx.add_chart("GAN balance", "D on real and fake", ["gan/d_real", "gan/d_fake", "gan/d_accuracy"])
        ctx.add_chart("GAN balance", "losses", ["train/loss_d", "train/loss_g"])
        ctx.add_chart("GAN balance", "gradient norms", ["train/grad_norm_d", "train/grad_norm_g"])

    def on_step(self, ctx: ProbeContext, record: StepRecord) -> None:
        d_output = record.labels.get("d_output", self.d_output or "prob")
        if d_output not in D_OUTPUTS:
            raise ValueError(f"gan-balance: d_output must be one of {D_OUTPUTS}, got {d_output!r}")
        self.d_output = d_output
        real, fake = _output(record, "d_real"), _output(record, "d_fake")
        row = {"step": record.step, **{key: record.scalars.get(key, np.nan)
                                        for key in ("loss_d", "loss_g", "grad_norm_d", "grad_norm_g")}}
        if real is not None and fake is not None:
            row.update(_discriminator_view(real, fake, d_output))
        elif np.isnan([row["loss_d"], row["loss_g"]]).all():
            return
        self.rows.append(row)
        if self.due(record.step):
            for key in ("d_real", "d_fake", "d_accuracy"):
                if key in row and np.isfinite(row[key]):
                    ctx.log_scalar(f"gan/{key}", row[key], record.step)

    def table(self) -> pd.DataFrame:
        columns = ["step", "loss_d", "loss_g", "grad_norm_d", "grad_norm_g", "d_real", "d_fake", "d_accuracy"]
        return pd.DataFrame(self.rows).reindex(columns=columns).astype(float)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not self.rows:
            return None
        frame = self.table()
        stretch = self._dominated_stretch(frame)
        self.figure = ctx.save_figure(_balance_figure(frame, self.d_output or "prob", stretch), "gan_balance")
        last = frame.tail(max(1, len(frame) // 10))
        text = (f"{len(frame)} steps recorded; discriminator output given as {self.d_output!r}. Over the last "
                f"tenth of training: median D(real) {_fmt(last['d_real'].median())}, D(fake) "
                f"{_fmt(last['d_fake'].median())}, D accuracy {_fmt(last['d_accuracy'].median())}, loss_d "
                f"{_fmt(last['loss_d'].median())}, loss_g {_fmt(last['loss_g'].median())}.")
        if self.d_output == "critic":
            text += " D(real) and D(fake) are the critic's mean values (no probabilities); their gap estimates the " \
                    "Wasserstein distance."
        return ProbeSection(title="GAN balance: discriminator against generator", text=text, figures=[self.figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not self.rows:
            return []
        frame = self.table()
        return [f for f in (self._d_dominates(frame), self._oscillation(frame)) if f is not None]

    def state(self) -> dict[str, Any]:
        if not self.rows:
            return {}
        frame = self.table()
        last = frame.tail(max(1, len(frame) // 10))
        return {"d_output": self.d_output, "steps": len(frame),
                **{f"final_{key}": _plain(last[key].median()) for key in ("d_real", "d_fake", "d_accuracy")}}

    # -- rules --------------------------------------------------------------------------------------

    def _dominated_stretch(self, frame: pd.DataFrame) -> tuple[int, int] | None:
        """Row indices [first, last] of the longest sustained stretch in which D wins, or None."""
        if self.d_output == "critic" or frame["d_fake"].notna().sum() < MIN_STRETCH_STEPS:
            return None
        window = max(5, len(frame) // 50)
        fake = frame["d_fake"].rolling(window, min_periods=1).median()
        accuracy = frame["d_accuracy"].rolling(window, min_periods=1).median()
        dominated = ((fake < FAKE_NEAR_ZERO) & (accuracy > ACCURACY_NEAR_ONE)).to_numpy()
        first, last = _longest_run(dominated)
        if first is None or last - first + 1 < max(MIN_STRETCH_STEPS, MIN_STRETCH_SHARE * len(frame)):
            return None
        return first, last

    def _d_dominates(self, frame: pd.DataFrame) -> Finding | None:
        stretch = self._dominated_stretch(frame)
        if stretch is None:
            return None
        first, last = stretch
        inside = frame.iloc[first:last + 1]
        evidence: dict[str, Any] = {
            "from_step": int(inside["step"].iloc[0]), "to_step": int(inside["step"].iloc[-1]),
            "share_of_run": round((last - first + 1) / len(frame), 3),
            "median_d_fake": _plain(inside["d_fake"].median()), "median_d_real": _plain(inside["d_real"].median()),
            "median_d_accuracy": _plain(inside["d_accuracy"].median()),
            "median_loss_g": _plain(inside["loss_g"].median()),
            "d_output": self.d_output,
        }
        vanishing = ""
        before = frame["grad_norm_g"].iloc[:max(first, max(1, len(frame) // 20))]
        if inside["grad_norm_g"].notna().any() and before.notna().any() and before.median() > 0:
            ratio = float(inside["grad_norm_g"].median() / before.median())
            evidence["grad_norm_g_in_stretch"] = _plain(inside["grad_norm_g"].median())
            evidence["grad_norm_g_before"] = _plain(before.median())
            evidence["grad_norm_g_ratio"] = round(ratio, 4)
            if ratio < GRAD_VANISHED:
                vanishing = f" The generator's gradient norm fell to {ratio:.1%} of its value before the stretch."
        to_end = last == len(frame) - 1
        return Finding(
            code="gan-d-dominates", severity="critical" if to_end else "warning",
            title=(f"The discriminator wins: median D(fake) {evidence['median_d_fake']:.3f}, accuracy "
                   f"{evidence['median_d_accuracy']:.0%} over steps {evidence['from_step']}–{evidence['to_step']}"),
            message=(f"For {evidence['share_of_run']:.0%} of the run (steps {evidence['from_step']}–"
                     f"{evidence['to_step']}{', to the end of training' if to_end else ''}) the discriminator "
                     f"rejected nearly every generated sample (median D(fake) {evidence['median_d_fake']:.3f}, "
                     f"D(real) {evidence['median_d_real']:.3f}) with accuracy "
                     f"{evidence['median_d_accuracy']:.1%}. A saturated discriminator gives the generator "
                     f"little direction to learn from (median generator loss {_fmt(evidence['median_loss_g'])})."
                     + vanishing),
            evidence=evidence, figure=self.figure,
            suggestion=("Rebalance the players: lower D's learning rate or its number of updates per G update (or "
                        "update G twice per D step), shrink D or add dropout, smooth the real labels (0.9), add "
                        "instance noise or spectral normalization to D, keep the non-saturating generator loss; "
                        "or train with WGAN-GP, whose critic keeps giving useful gradients when it wins."),
        )

    def _oscillation(self, frame: pd.DataFrame) -> Finding | None:
        swings = {key: _swing_growth(frame[key].to_numpy()) for key in ("loss_d", "loss_g")}
        measured = {key: value for key, value in swings.items() if value is not None}
        if not measured or not all(_growing(value) for value in measured.values()):
            return None
        steps = frame["step"].to_numpy()
        evidence: dict[str, Any] = {"segments": OSC_SEGMENTS, "from_step": int(steps[len(steps) // 10]),
                                    "to_step": int(steps[-1])}
        for key, value in measured.items():
            evidence[f"{key}_swing_by_segment"] = [round(a, 4) for a in value["amplitudes"]]
            evidence[f"{key}_growth"] = round(value["growth"], 2)
        headline = max(measured.values(), key=lambda v: v["growth"])
        return Finding(
            code="gan-oscillation", severity="warning",
            title=f"The GAN losses swing with growing amplitude (×{headline['growth']:.1f} over the run)",
            message=(f"After removing per-step noise and each segment's drift, the swing of "
                     f"{' and '.join(measured)} grew segment by segment over steps {evidence['from_step']}–"
                     f"{evidence['to_step']} ("
                     + "; ".join(f"{key}: {' → '.join(f'{a:.3f}' for a in value['amplitudes'])}"
                                 for key, value in measured.items())
                     + "). The discriminator and the generator are chasing each other instead of settling."),
            evidence=evidence, figure=self.figure,
            suggestion=("Lower both learning rates (or β1 of Adam to 0.5 or 0), update the players alternately "
                        "rather than simultaneously, and regularize D (gradient penalty: WGAN-GP or R1, spectral "
                        "normalization); a two time-scale update (D faster than G) also damps the cycle."),
        )


def _output(record: StepRecord, key: str) -> torch.Tensor | None:
    if key in record.tensors:
        return record.tensors[key].detach().float().flatten().cpu()
    if key in record.scalars:
        return torch.tensor([record.scalars[key]])
    return None


def _discriminator_view(real: torch.Tensor, fake: torch.Tensor, d_output: str) -> dict[str, float]:
    """Mean D(real), D(fake) as probabilities (critic values for a critic) and D's accuracy (NaN for a critic)."""
    if d_output == "logit":
        real, fake = torch.sigmoid(real), torch.sigmoid(fake)
    if d_output == "critic":
        return {"d_real": float(real.mean()), "d_fake": float(fake.mean()), "d_accuracy": np.nan}
    correct = (real > 0.5).sum() + (fake < 0.5).sum()
    return {"d_real": float(real.mean()), "d_fake": float(fake.mean()),
            "d_accuracy": float(correct) / (real.numel() + fake.numel())}


def _longest_run(mask: np.ndarray) -> tuple[int | None, int]:
    """First and last index of the longest run of True in `mask` (None, -1 when there is none)."""
    if not mask.any():
        return None, -1
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best]) - 1


def _swing_growth(values: np.ndarray) -> dict[str, Any] | None:
    """Swing of a loss in each of `OSC_SEGMENTS` segments of the run (after a 10% burn-in): the standard deviation,
    around the segment's own straight-line trend (drift out), of the loss averaged over a short window (per-step
    noise out)."""
    values = values[np.isfinite(values)]
    if len(values) < OSC_MIN_STEPS:
        return None
    series = pd.Series(values[len(values) // 10:])
    smooth = series.rolling(max(1, len(series) // 200), min_periods=1).mean().to_numpy()
    amplitudes = []
    for part in np.array_split(smooth, OSC_SEGMENTS):
        position = np.arange(len(part))
        amplitudes.append(float(np.std(part - np.polyval(np.polyfit(position, part, 1), position))))
    growth = amplitudes[-1] / max(amplitudes[0], 1e-12)
    correlation = float(spearmanr(np.arange(OSC_SEGMENTS), amplitudes).statistic) if np.ptp(amplitudes) > 0 else 0.0
    return {"amplitudes": amplitudes, "growth": growth, "rank_correlation": correlation}


def _growing(swing: dict[str, Any]) -> bool:
    return (swing["growth"] >= OSC_GROWTH and swing["rank_correlation"] >= OSC_RANK_CORRELATION
            and swing["amplitudes"][-1] >= OSC_MIN_AMPLITUDE)


def _balance_figure(frame: pd.DataFrame, d_output: str, stretch: tuple[int, int] | None) -> Figure:
    figure, axes = new_figure(3, 1, figsize=(9, 8), sharex=True)
    steps = frame["step"]
    axes[0].plot(steps, frame["d_real"], label="D(real)", color="tab:blue", lw=1)
    axes[0].plot(steps, frame["d_fake"], label="D(fake)", color="tab:red", lw=1)
    if d_output != "critic":
        axes[0].plot(steps, frame["d_accuracy"], label="D accuracy", color="tab:gray", lw=1, alpha=0.7)
        axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("critic value" if d_output == "critic" else "probability")
    axes[1].plot(steps, frame["loss_d"], label="loss_d", color="tab:blue", lw=1)
    axes[1].plot(steps, frame["loss_g"], label="loss_g", color="tab:red", lw=1)
    axes[1].set_ylabel("loss")
    for key, color in (("grad_norm_d", "tab:blue"), ("grad_norm_g", "tab:red")):
        if frame[key].notna().any():
            axes[2].semilogy(steps, frame[key].clip(lower=1e-12), label=key, color=color, lw=1)
    axes[2].set_ylabel("gradient norm")
    axes[2].set_xlabel("step")
    for axis in axes:
        if stretch is not None:
            axis.axvspan(steps.iloc[stretch[0]], steps.iloc[stretch[1]], color="tab:orange", alpha=0.15,
                         label="D dominates" if axis is axes[0] else None)
        if axis.has_data():
            legend(axis, loc="upper right", fontsize=8)
    axes[0].set_title("Discriminator against generator")
    figure.tight_layout()
    return figure


def _fmt(value: Any) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _plain(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None

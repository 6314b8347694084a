"""The training loss over steps: the recorded series with its non-finite values and an exponential running mean
and variance (`LossSeries`), and the window statistics of the finite losses (`summarise_loss`): medians, spreads,
step-to-step swings over ten windows, the rise after the best window, its Kendall trend, spikes."""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.metrics.statistics import kendall_tau
from gendiag.rules.thresholds import LOSS_MIN_POINTS, LOSS_SPIKE_MADS

if TYPE_CHECKING:
    import torch

WINDOWS = 10
RUNNING_DECAY = 0.98  # exponential running mean and variance (about 50 steps of memory)


class LossSeries:
    """Every recorded loss (one float a step) with the first non-finite step and a running mean and variance of the
    finite ones."""

    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")
        self.first_nonfinite: int | None = None
        self.nonfinite = 0
        self.running_mean: float | None = None
        self.running_var = 0.0
        self.last_finite_step = 0

    def __len__(self) -> int:
        return len(self.values)

    def add(self, step: int, value: float) -> bool:
        """Record one loss; returns whether it was finite (a non-finite loss leaves the running mean alone)."""
        self.steps.append(step)
        self.values.append(value)
        if not math.isfinite(value):
            self.nonfinite += 1
            if self.first_nonfinite is None:
                self.first_nonfinite = step
            return False
        if self.running_mean is None:
            self.running_mean = value
        else:
            delta = value - self.running_mean
            self.running_mean += (1 - RUNNING_DECAY) * delta
            self.running_var = RUNNING_DECAY * (self.running_var + (1 - RUNNING_DECAY) * delta * delta)
        self.last_finite_step = step
        return True

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) as numpy arrays (copies: the series may grow while they are used)."""
        return np.array(self.steps, dtype=np.int64), np.array(self.values, dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """`summarise_loss` of the finite losses, with the counts of recorded and non-finite ones."""
        steps, values = self.arrays()
        finite = np.isfinite(values)
        summary = summarise_loss(steps[finite], values[finite])
        summary.update(recorded=len(values), nonfinite=self.nonfinite, first_nonfinite_step=self.first_nonfinite)
        return summary


class NamedLosses:
    """The non-finite values of the named losses a loop reports beside (or instead of) `loss`: `loss_d`, `loss_g`,
    any `loss_*` scalar of `mon.step`; per name the losses recorded, the non-finite ones and the first such step."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, Any]] = {}

    def add(self, name: str, step: int, value: float) -> None:
        counts = self.counts.setdefault(name, {"recorded": 0, "nonfinite": 0, "first_nonfinite_step": None})
        counts["recorded"] += 1
        if not math.isfinite(value):
            counts["nonfinite"] += 1
            if counts["first_nonfinite_step"] is None:
                counts["first_nonfinite_step"] = step

    def nonfinite(self) -> dict[str, dict[str, Any]]:
        """The names that had a non-finite value, earliest first step first."""
        bad = {name: dict(c) for name, c in self.counts.items() if c["first_nonfinite_step"] is not None}
        return dict(sorted(bad.items(), key=lambda item: item[1]["first_nonfinite_step"]))


# measured for the rule, not kept in probe_data.json
INTERNAL = ("table", "blowup", "peak_after_best", "calm_before_last", "falling_at_end", "fall_speedup", "terms")

NOT_TERMS = ("lr", "epoch", "d_real", "d_fake")  # scalars of mon.step that are no part of the loss


class LossTerms:
    """The scalars a loop reports beside its loss (`mon.step(..., kl=..., recon=...)`), and the KL of a VAE's
    posterior computed from `observe_latents` (mean over the batch of 0.5 Σ (μ² + σ² − 1 − log σ²), ≥ 0 by
    definition): per term its steps and values, to say which term of a loss has no floor."""

    LATENT_KL = "the KL of the posterior (computed from observe_latents)"

    def __init__(self) -> None:
        self.series: dict[str, tuple[array, array]] = {}

    def add(self, name: str, step: int, value: float) -> None:
        if math.isfinite(value):
            steps, values = self.series.setdefault(name, (array("q"), array("d")))
            steps.append(step)
            values.append(value)

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            if name not in NOT_TERMS and not name.startswith("grad_norm"):
                self.add(name, step, value)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per term with at least WINDOWS values: the median of its first and last tenth, and Kendall's tau of its
        window medians over the windows."""
        found = {}
        for name, (steps, values) in self.series.items():
            if len(values) < WINDOWS:
                continue
            windows = np.array_split(np.asarray(values), WINDOWS)
            medians = np.array([np.median(w) for w in windows])
            tau = kendall_tau(np.arange(WINDOWS), medians) if np.ptp(medians) > 0 else 0.0
            found[name] = {"first": float(medians[0]), "last": float(medians[-1]), "tau": tau}
        return found


def latent_kl(mu: torch.Tensor, logvar: torch.Tensor) -> float:
    """KL(N(μ, σ²) || N(0, I)) summed over the latent dimensions, averaged over the batch."""
    mu, logvar = mu.double(), logvar.double()
    return float((0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).sum(1).mean())


def summarise_loss(steps: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    """Window medians, spreads and step-to-step swings of finite losses, and from them: the best (lowest) window,
    the rise of the last window above it and the blow-up of the highest later one (both in units of the best
    level, or of its spread when that is larger), Kendall's tau of the medians from the best window on, the growth
    of the swing from its calmest window to the last, and spikes (more than LOSS_SPIKE_MADS median absolute
    deviations from their window's median). Fewer than LOSS_MIN_POINTS losses: only the first, last and lowest."""
    summary: dict[str, Any] = {"finite": len(values)}
    if len(values) == 0:
        return summary
    summary.update(first_loss=float(values[0]), last_loss=float(values[-1]), min_loss=float(values.min()),
                   last_finite_step=int(steps[-1]))
    if len(values) < LOSS_MIN_POINTS:
        return summary
    import pandas as pd

    windows = np.array_split(np.arange(len(values)), WINDOWS)
    medians = np.array([np.median(values[w]) for w in windows])
    swings = np.array([np.median(np.abs(np.diff(values[w]))) for w in windows])
    spreads = np.array([np.subtract(*np.percentile(values[w], [75, 25])) for w in windows])
    best = int(np.argmin(medians))
    scale = max(abs(medians[best]), spreads[best], 1e-12)
    first_scale = max(abs(medians[0]), spreads[0], 1e-12)
    rise = (medians[-1] - medians[best]) / scale
    peak = int(best + np.argmax(medians[best:]))
    blowup = (medians[peak] - medians[best]) / scale
    tau = kendall_tau(np.arange(WINDOWS - best), medians[best:]) if best <= WINDOWS - 3 else 0.0
    fall_tau = kendall_tau(np.arange(WINDOWS), medians)
    calm = int(np.argmin(swings))
    growth = swings[-1] / max(swings[calm], 1e-12)
    deviations = np.concatenate([np.abs(values[w] - np.median(values[w])) for w in windows])
    mads = np.concatenate([np.full(len(w), np.median(np.abs(values[w] - np.median(values[w])))) for w in windows])
    spikes = steps[deviations > LOSS_SPIKE_MADS * np.maximum(mads, 1e-12)]
    edges = [(int(steps[w[0]]), int(steps[w[-1]])) for w in windows]
    summary.update(
        best_window=edges[best], best_median=float(medians[best]),
        last_median=float(medians[-1]), peak_window=edges[peak], peak_median=float(medians[peak]),
        rise=float(rise), trend_tau=tau, oscillation_growth=float(growth), calm_window=edges[calm],
        spikes=len(spikes), spike_steps=[int(s) for s in spikes[:20]],
        table=pd.DataFrame({"steps": [f"{a}–{b}" for a, b in edges], "median": medians, "IQR": spreads,
                            "median step-to-step change": swings}).set_index("steps"),
        blowup=float(blowup), peak_after_best=peak > best, calm_before_last=calm < WINDOWS - 1,
        first_median=float(medians[0]), fall=float((medians[0] - medians[-1]) / first_scale), fall_tau=fall_tau,
        falling_at_end=best == WINDOWS - 1,
        fall_speedup=float((medians[WINDOWS // 2 - 1] - medians[-1])
                           / max(medians[0] - medians[WINDOWS // 2 - 1], 1e-12 * first_scale)),
    )
    return summary

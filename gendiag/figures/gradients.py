"""The gradients figure (gradient norm per tensor, update-to-weight ratio per step, running gradient noise) and the
Gradients and updates section's prose."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from gendiag.figures import legend, new_figure
from gendiag.quantities.gradient_norms import last_per_tensor, median_per_tensor
from gendiag.rules.gradients import HEALTHY_RATIO
from gendiag.rules.thresholds import GRADIENTS_STALLED_RATIO

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def gradients_figure(names: list[str], steps: list[int], norms: np.ndarray, ratio_steps: list[int],
                     ratios: list[np.ndarray], noise_steps: list[int], noise_ratios: list[float],
                     networks: dict[str, list[int]] | None = None) -> "Figure":
    """Gradient norms of the (at most 12) largest tensors and the global norm (with several `networks`, each
    network's own norm, named, and no pooled one), their update-to-weight ratios against the healthy band (each
    network's median, named), and the running noise-to-signal ratio."""
    several = networks is not None and len(networks) > 1
    figure, axes = new_figure(1, 3, figsize=(15, 3.8))
    shown = min(len(names), 12)
    order = np.argsort(-np.nan_to_num(median_per_tensor(norms), nan=-1.0))[:shown]
    positive = np.where(norms > 0, norms, np.nan)
    for index in order:
        if not np.isnan(positive[:, index]).all():
            axes[0].plot(steps, positive[:, index], lw=0.8, alpha=0.4 if several else 0.7,
                         label=None if several else names[index])
    totals = ({name: _total(norms[:, columns]) for name, columns in networks.items()} if several
              else {"global": _total(norms)})
    if any((total > 0).any() for total in totals.values()):
        for (name, total), color in zip(totals.items(), NETWORK_COLORS):
            if (total > 0).any():
                axes[0].plot(steps, np.where(total > 0, total, np.nan), color=color, lw=1.6, label=name)
        axes[0].set_yscale("log")
        legend(axes[0], fontsize=6, ncol=2)
    else:
        axes[0].text(0.5, 0.5, "no gradient measured", ha="center", va="center", transform=axes[0].transAxes)
    for name, total in totals.items():
        if several and not (total > 0).any():
            axes[0].plot([], [], color="gray", ls=":", label=f"{name}: no gradient read")
    if several:
        legend(axes[0], fontsize=6, ncol=2)
    axes[0].set_title("gradient norm per network and tensor" if several else
                      "gradient norm per tensor" + (f" ({shown} largest)" if shown < len(names) else ""))
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("gradient L2 norm")
    if ratios:
        matrix = np.stack(ratios)
        positive_ratios = np.where(matrix > 0, matrix, np.nan)
        for index in order:
            if not np.isnan(positive_ratios[:, index]).all():
                axes[1].plot(ratio_steps, positive_ratios[:, index], lw=0.8, alpha=0.4 if several else 0.7)
        if several:
            for (name, columns), color in zip(networks.items(), NETWORK_COLORS):
                median = _row_median(positive_ratios[:, columns])
                measured = ~np.isnan(median)  # each update measures one network's tensors: the others' rows are NaN
                if measured.any():
                    axes[1].plot(np.asarray(ratio_steps)[measured], median[measured], color=color, lw=1.6,
                                 marker=".", label=f"{name} (median)")
                elif (matrix[:, columns] == 0).all(axis=1).any():
                    axes[1].plot([], [], color="gray", ls=":", label=f"{name}: weights unchanged")
        axes[1].axhspan(*HEALTHY_RATIO, color="tab:green", alpha=0.1, label="healthy range")
        axes[1].axhline(GRADIENTS_STALLED_RATIO, color="tab:red", ls="--", lw=1, label="stalled below")
        axes[1].set_yscale("log")
        legend(axes[1], fontsize=7)
    axes[1].set_title("update / weight per step")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("‖Δw‖ / ‖w‖ per step")
    finite = [(s, r) for s, r in zip(noise_steps, noise_ratios) if math.isfinite(r) and r > 0]
    if finite:
        axes[2].plot(*zip(*finite), color="tab:purple")
        axes[2].set_yscale("log")
    axes[2].axhline(1.0, color="gray", ls=":", lw=1)
    axes[2].set_title("gradient noise-to-signal (running" + (", all networks)" if several else ")"))
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("gradient variance / squared mean")
    figure.tight_layout()
    return figure


NETWORK_COLORS = ("k", "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:gray")


def _row_median(values: np.ndarray) -> np.ndarray:
    """The median of each row over its measured (not NaN) values; NaN for a row without any."""
    import pandas as pd

    return pd.DataFrame(values).median(axis=1).to_numpy()


def _total(norms: np.ndarray) -> np.ndarray:
    """The norm over some tensors at each reading (0 where none was measured)."""
    return np.sqrt(np.nansum(norms ** 2, axis=1))

GRADIENTS_CAPTION = ("Gradient L2 norm per parameter tensor and overall, the size of each optimizer update relative "
                     "to the weights against the healthy band, and the gradient noise-to-signal ratio.")


def gradients_text(summary: dict[str, Any]) -> str:
    """The section text: tensors, gradient norms (per network when there are several: no pooled figure), where
    each network was read, update ratios, noise."""
    lines = [f"{summary['tensors']} parameter tensors ({summary['parameters']:,} values)."]
    networks = summary["networks"]
    if len(networks) > 1:
        for name, network in networks.items():
            if network.get("optimizer_steps") == 0:
                lines.append(f"{name}: its optimizer made no step.")
            elif network.get("grad_norm_median") is not None:
                lines.append(f"{name}: gradient norm {network['grad_norm_first']:.3g} at its first reading, median "
                             f"{network['grad_norm_median']:.3g}, {network['grad_norm_last']:.3g} at the last.")
            else:
                lines.append(f"{name}: no gradient norm was measured (see the findings).")
    elif summary["grad_norm_median"] is not None:
        lines.append(f"Global gradient norm: {summary['grad_norm_first']:.3g} at the first recorded step, median "
                     f"{summary['grad_norm_median']:.3g}, {summary['grad_norm_last']:.3g} at the last.")
    else:
        lines.append("No gradient norm was measured (see the findings).")
    read_at = {name: network["read_at"] for name, network in summary["networks"].items()}
    lines.append("Where the gradients were read: " + "; ".join(f"{name} at each {where}"
                                                               for name, where in read_at.items()) + ".")
    for name, network in summary["networks"].items():
        if network["update_samples"]:
            lines.append(f"{name}: median update-to-weight ratio of the weight matrices over "
                         f"{network['update_samples']} measured updates: {network['update_ratio_median']:.3g} "
                         f"(healthy about 1e-3); {network['zero_update_samples']} of them left the weights unchanged.")
    if summary["noise_to_signal"] is not None and len(networks) == 1:
        lines.append(f"Gradient noise-to-signal ratio (batch-gradient variance over squared mean gradient): "
                     f"{summary['noise_to_signal']:.3g}" + (" — a step's gradient is mostly noise." if
                                                         summary["noise_to_signal"] > 1 else "."))
    if "scaler_skipped_steps" in summary:
        skipped = summary["scaler_skipped_steps"]
        at = ", ".join(str(step) for step in summary["scaler_first_skipped"]) + (", ..." if skipped > 10 else "")
        lines.append(f"Mixed precision: GradScaler skipped {skipped} optimizer step{'s' if skipped != 1 else ''} on "
                     f"an overflow" + (f" (steps {at})" if skipped else "") + f"; its last scale was "
                     f"{summary['scaler_scale']:g}. The gradients above are unscaled; skipped steps are not counted "
                     f"as updates.")
    return " ".join(lines)


NO_RATIO = "not measured (read on the weight matrices)"  # the update ratio is read on tensors of two or more dimensions


def gradients_table(names: list[str], params: list[Any], norms: np.ndarray, summary: dict[str, Any]) -> Any:
    """Per tensor: median and last gradient norm, weight norm, median update-to-weight ratio (a DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        {"grad norm (median)": median_per_tensor(norms), "grad norm (last)": last_per_tensor(norms),
         "weight norm": [float(p.detach().norm()) for p in params],
         "update / weight (median)": [summary["update_ratio_by_tensor"].get(n, NO_RATIO) for n in names]},
        index=pd.Index(names, name="tensor"))

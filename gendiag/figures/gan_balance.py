"""The GAN balance figure: D(real), D(fake) and D's accuracy, both losses and both gradient norms, step by step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendiag.figures import legend, new_figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

CAPTION = ("D's output on real and fake batches (probability, or the critic's raw value) and its accuracy, both losses "
           "as the loop reported them, and both networks' gradient norms (L2 over all parameters, log scale), per step.")


def balance_figure(frame: pd.DataFrame, d_output: str, stretch: tuple[int, int] | None,
                   logit_floor: float | None = None) -> Figure:
    """D on real and fake (and its accuracy), both losses, both gradient norms over the steps; the stretch in which
    D dominates shaded; where D's outputs are squashed (`gan-d-output-squashed`), the floor of its loss."""
    figure, axes = new_figure(3, 1, figsize=(9, 8), sharex=True)
    steps = frame["step"]
    axes[0].plot(steps, frame["d_real"], label="D(real)", color="tab:blue", lw=1)
    axes[0].plot(steps, frame["d_fake"], label="D(fake)", color="tab:red", lw=1)
    if d_output != "critic":
        axes[0].plot(steps, frame["d_accuracy"], label="D accuracy", color="tab:gray", lw=1, alpha=0.7)
        axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("critic value (raw)" if d_output == "critic" else "D output (probability)")
    axes[1].plot(steps, frame["loss_d"], label="loss_d", color="tab:blue", lw=1)
    axes[1].plot(steps, frame["loss_g"], label="loss_g", color="tab:red", lw=1)
    if logit_floor is not None:
        axes[1].axhline(logit_floor, color="k", ls="--", lw=1, label=f"floor of loss_d ({logit_floor:.3f})")
    axes[1].set_ylabel("loss (as reported)")
    for key, color in (("grad_norm_d", "tab:blue"), ("grad_norm_g", "tab:red")):
        if frame[key].notna().any():
            axes[2].semilogy(steps, frame[key].clip(lower=1e-12), label=key, color=color, lw=1)
    axes[2].set_ylabel("gradient norm (L2)")
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

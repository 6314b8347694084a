"""The forward-process figure: the training inputs' mean square per bin of ᾱ_t against the schedule's line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gendiag.figures import legend, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CAPTION = ("Mean square per element of the training inputs x_t, per bin of ᾱ_t, against ᾱ_t·E[x0²] + 1 - ᾱ_t (the "
           "schedule's forward process) and ᾱ_t²·E[x0²] + (1 - ᾱ_t)² (the same without its square roots).")


def forward_figure(measured: dict[str, Any]) -> "Figure":
    """Measured points and the two lines over ᾱ_t."""
    figure, axes = new_figure(1, 1, figsize=(5.5, 3.6))
    abar = measured["alpha_bar"]
    axes.plot(abar, measured["expected"], color="tab:green", label="schedule: ᾱ·E[x0²] + 1 - ᾱ")
    axes.plot(abar, measured["missing_root"], color="tab:red", linestyle="--", label="no square roots")
    axes.plot(abar, measured["measured"], "o", color="black", label="training inputs")
    axes.set_xlabel("ᾱ_t")
    axes.set_ylabel("mean square of x_t per element")
    axes.set_title(f"median |log(measured / expected)| = {measured['off']:.3g}", fontsize=9)
    legend(axes, fontsize=8)
    figure.tight_layout()
    return figure

"""Which finding codes a figure is evidence for, read from the code table (`gendiag.rules.codes`).

By default `Monitor.finish` draws a probe's figure only where it serves: the run's overview (the loss curve, the
samples against the data, and their counterparts for a GAN and a VAE) always, and every other figure of a probe
only where a finding it is evidence for holds. Drawing is most of the report's cost (≈ 0.1–0.6 s a figure on one
core), and on a healthy run most figures would show measurements that found nothing. `Monitor(figures="all")` draws
every figure the probes make (a few make one only where their own finding holds)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

FIGURE_POLICIES = ("findings", "all")

# Drawn on every run: what a person looks at first, finding or not (a GAN's two losses and its modes, a VAE's
# latent units are its loss curve and samples).
OVERVIEW = frozenset({"gendiag.figures.loss:loss_figure", "gendiag.figures.samples_vs_data:samples_figure",
                      "gendiag.figures.gan_balance:balance_figure", "gendiag.figures.modes:coverage_figure",
                      "gendiag.figures.vae_health:latent_figure"})

# Figures that show a finding beside the one the code table names for it.
ALSO_SHOWS: dict[str, tuple[str, ...]] = {
    "gendiag.figures.velocity:quivers": ("field-ignores-x", "field-ignores-t"),
}


def check_figure_policy(figures: str) -> str:
    """`figures` if it is one of FIGURE_POLICIES; a one-line ValueError otherwise."""
    if figures not in FIGURE_POLICIES:
        raise ValueError(f"Monitor: figures must be one of {FIGURE_POLICIES}, got {figures!r}")
    return figures


def figure_key(function: Callable[..., Any]) -> str:
    """"module:qualname" of a figure function, as the code table names it."""
    return f"{function.__module__}:{function.__qualname__}"


def evidence_codes(function: Callable[..., Any]) -> frozenset[str]:
    """The codes whose finding `function`'s figure shows; empty for an overview figure or one that shows no code
    (drawn on every run)."""
    key = figure_key(function)
    if key in OVERVIEW:
        return frozenset()
    return _codes_by_figure().get(key, frozenset()) | frozenset(ALSO_SHOWS.get(key, ()))


@lru_cache(maxsize=1)
def _codes_by_figure() -> dict[str, frozenset[str]]:
    from gendiag.rules.codes import CODES

    codes: dict[str, set[str]] = {}
    for entry in CODES:
        if entry.figure is not None:
            codes.setdefault(entry.figure, set()).add(entry.code)
    return {figure: frozenset(named) for figure, named in codes.items()}

"""The VAE latent figure: KL per latent dimension at the last observation, active units over training."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gendiag.figures import new_figure
from gendiag.quantities.vae_health import LatentTimeline
from gendiag.rules.thresholds import VAE_ACTIVE_VARIANCE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CAPTION = ("KL of each latent dimension's posterior from the prior at the last observation (nats; blue: active units, "
           "whose posterior mean varies across the data), and the count of active units over training.")


def latent_figure(timeline: LatentTimeline) -> Figure:
    """KL per latent dimension at the last observation (active units in blue), and active units over training."""
    from matplotlib.ticker import MaxNLocator

    final = timeline.last
    latent = len(final.kl)
    figure, (bars, line) = new_figure(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    active = final.variance > VAE_ACTIVE_VARIANCE
    bars.bar(np.arange(latent), final.kl, color=np.where(active, "tab:blue", "tab:gray"))
    bars.set_xlabel("latent dimension (index)")
    bars.xaxis.set_major_locator(MaxNLocator(integer=True))
    bars.set_ylabel("KL (nats)")
    bars.set_title(f"KL per latent dimension at step {final.step} (blue: active, {int(active.sum())}/{latent})")
    steps = [entry.step for entry in timeline.observations]
    line.plot(steps, [entry.active(VAE_ACTIVE_VARIANCE) for entry in timeline.observations], marker="o", ms=3,
              color="tab:blue")
    line.set_ylim(-0.5, latent + 0.5)
    line.yaxis.set_major_locator(MaxNLocator(integer=True))
    line.set_xlabel("step")
    line.set_ylabel("active units (count)")
    line.set_title("active units over training")
    figure.tight_layout()
    return figure

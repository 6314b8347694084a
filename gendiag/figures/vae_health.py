"""The VAE latent figure: KL per latent dimension at the last observation, active units over training."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gendiag.figures import new_figure
from gendiag.quantities.vae_health import LatentTimeline
from gendiag.rules.thresholds import VAE_ACTIVE_VARIANCE

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def latent_figure(timeline: LatentTimeline) -> Figure:
    """KL per latent dimension at the last observation (active units in blue), and active units over training."""
    final = timeline.last
    latent = len(final.kl)
    figure, (bars, line) = new_figure(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    active = final.variance > VAE_ACTIVE_VARIANCE
    bars.bar(np.arange(latent), final.kl, color=np.where(active, "tab:blue", "tab:gray"))
    bars.set_xlabel("latent dimension")
    bars.set_ylabel("KL (nats)")
    bars.set_title(f"KL per latent dimension at step {final.step} (blue: active, {int(active.sum())}/{latent})")
    steps = [entry.step for entry in timeline.observations]
    line.plot(steps, [entry.active(VAE_ACTIVE_VARIANCE) for entry in timeline.observations], marker="o", ms=3,
              color="tab:blue")
    line.set_ylim(-0.5, latent + 0.5)
    line.set_xlabel("step")
    line.set_ylabel("active units")
    line.set_title("active units over training")
    figure.tight_layout()
    return figure

"""A VAE's latent code: active units and KL per latent dimension over training.

It reads the posterior parameters the loop hands to `Monitor.observe_latents(mu, logvar)` (the encoder on a batch
of data, ideally a fixed held-out batch; several calls at one step are pooled). A unit is active when the variance
across the data of its posterior mean exceeds 0.01 (Burda et al.'s activity statistic).

Finding `posterior-collapse`: at the last observation at most a tenth of the latent units are active, or the KL
per dimension has vanished: the decoder ignores the code and every input gets the same posterior.

The timeline is `gendiag.quantities.vae_health`, the rule `gendiag.rules.vae_health`, the figure
`gendiag.figures.vae_health`.
"""

from __future__ import annotations

from typing import Any

import torch

from gendiag.context import ProbeContext
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection
from gendiag.quantities.vae_health import LatentTimeline
from gendiag.rules.thresholds import VAE_ACTIVE_VARIANCE
from gendiag.rules.vae_health import posterior_collapse

FIGURE = "vae_latents"


@register
class VaeHealthProbe(Probe):
    """Active units and KL per latent dimension at each observation; `posterior-collapse`."""

    name = "vae-health"
    tasks = ("vae",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.timeline = LatentTimeline()

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("VAE", "ELBO terms", ["train/recon", "train/kl", "loss/train"])
        ctx.add_chart("VAE", "latent activity", ["vae/active_units", "vae/kl_per_dim_mean"])

    def on_latents(self, ctx: ProbeContext, mu: torch.Tensor, logvar: torch.Tensor, step: int) -> None:
        entry = self.timeline.add(mu, logvar, step)
        ctx.log_scalar("vae/active_units", entry.active(VAE_ACTIVE_VARIANCE), step)
        ctx.log_scalar("vae/kl_per_dim_mean", float(entry.kl.mean()), step)

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not len(self.timeline):
            return None
        from gendiag.figures.vae_health import CAPTION, latent_figure

        final = self.timeline.last
        figure = ctx.draw_figure(FIGURE, latent_figure, self.timeline, caption=CAPTION)
        latent = len(final.kl)
        text = (f"At step {final.step} ({final.samples} encoded samples): {final.active(VAE_ACTIVE_VARIANCE)} of "
                f"{latent} latent units active (variance across the data of the posterior mean > "
                f"{VAE_ACTIVE_VARIANCE}); total KL {final.kl.sum():.3f} nats, per dimension from "
                f"{final.kl.min():.4f} to {final.kl.max():.4f}.")
        return ProbeSection(title="VAE latent health", text=text, figures=[figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        finding = posterior_collapse(self.timeline, f"figures/{FIGURE}.png")
        return [] if finding is None else [finding]

    def state(self) -> dict[str, Any]:
        if not len(self.timeline):
            return {}
        final = self.timeline.last
        return {"step": final.step, "active_units": final.active(VAE_ACTIVE_VARIANCE), "latent_dims": len(final.kl),
                "kl_per_dim": [round(float(v), 4) for v in final.kl],
                "active_by_step": {str(e.step): e.active(VAE_ACTIVE_VARIANCE) for e in self.timeline.observations}}

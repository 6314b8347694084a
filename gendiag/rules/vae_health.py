"""`posterior-collapse`: at the last observation at most `VAE_COLLAPSED_ACTIVE_SHARE` of the latent units are
active (posterior-mean variance above `VAE_ACTIVE_VARIANCE`), or the mean KL per dimension is below
`VAE_VANISHED_KL_PER_DIM`: the decoder ignores the code and every input gets the same posterior."""

from __future__ import annotations

import numpy as np

from gendiag.findings import Finding
from gendiag.quantities.vae_health import LatentObservation, LatentTimeline
from gendiag.rules.thresholds import VAE_ACTIVE_VARIANCE, VAE_COLLAPSED_ACTIVE_SHARE, VAE_VANISHED_KL_PER_DIM


def posterior_collapse(timeline: LatentTimeline, figure: str | None) -> Finding | None:
    """The `posterior-collapse` finding, or None."""
    if not len(timeline):
        return None
    final = timeline.last
    latent = len(final.kl)
    allowed = int(np.floor(VAE_COLLAPSED_ACTIVE_SHARE * latent))
    kl_mean = float(final.kl.mean())
    active = final.active(VAE_ACTIVE_VARIANCE)
    vanished = kl_mean < VAE_VANISHED_KL_PER_DIM
    if not (active <= allowed or vanished):
        return None
    since = final.step
    for entry in reversed(timeline.observations):
        if not _collapsed(entry, allowed):
            break
        since = entry.step
    evidence = {
        "step": final.step, "since_step": since, "active_units": active, "latent_dims": latent,
        "active_threshold_variance": VAE_ACTIVE_VARIANCE, "kl_total": round(float(final.kl.sum()), 4),
        "kl_per_dim": [round(float(v), 4) for v in final.kl],
        "mu_variance_per_dim": [round(float(v), 5) for v in final.variance],
        "peak_active_units": max(entry.active(VAE_ACTIVE_VARIANCE) for entry in timeline.observations),
    }
    return Finding(
        code="posterior-collapse", severity="critical" if active == 0 or vanished else "warning",
        title=f"Posterior collapse: {active} of {latent} latent units active, KL {evidence['kl_total']:.3f} nats",
        message=(f"From step {since} on, at most {allowed} of {latent} latent units stayed active; at step "
                 f"{final.step} {active} are (peak during training: "
                 f"{evidence['peak_active_units']}) and the KL to the prior is {evidence['kl_total']:.3f} nats in "
                 f"all ({kl_mean:.4f} per dimension). The encoder gives nearly every input the prior as its "
                 "posterior, so the decoder ignores the code: samples and reconstructions are the same blur."),
        evidence=evidence, figure=figure,
        suggestion=("Lower the KL weight (β) or anneal it from 0 over the first epochs, check that the "
                    "reconstruction term is summed over pixels (a per-pixel mean against a summed KL weights "
                    "the KL by the pixel count), or use free bits (a KL floor per dimension); a decoder too "
                    "strong for the code (autoregressive) also causes this."),
    )


def _collapsed(entry: LatentObservation, allowed: int) -> bool:
    return entry.active(VAE_ACTIVE_VARIANCE) <= allowed or float(entry.kl.mean()) < VAE_VANISHED_KL_PER_DIM

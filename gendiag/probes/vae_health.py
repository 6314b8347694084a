"""A VAE's latent code: active units and KL per latent dimension over training.

It reads the posterior parameters the loop hands to `Monitor.observe_latents(mu, logvar)` (the encoder on a batch
of data, ideally a fixed held-out batch; several calls at one step are pooled). A unit is active when the variance
across the data of its posterior mean exceeds 0.01 (Burda et al.'s activity statistic).

Finding `posterior-collapse`: at the last observation at most a tenth of the latent units are active, or the KL
per dimension has vanished: the decoder ignores the code and every input gets the same posterior.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gendiag.context import ProbeContext
from gendiag.figures import new_figure
from gendiag.findings import Finding
from gendiag.probes import register
from gendiag.probes.base import Probe
from gendiag.report.section import ProbeSection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ACTIVE_VARIANCE = 0.01  # variance of the posterior mean across the data above which a unit is active
COLLAPSED_ACTIVE_SHARE = 0.1  # at most this share of units active: collapsed
VANISHED_KL_PER_DIM = 0.01  # nats: mean KL per latent dimension below this: vanished


def activity(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per latent dimension: the variance across the batch of the posterior mean, and the batch-mean
    KL(N(μ, σ²) ‖ N(0, 1)) in nats."""
    mu, logvar = mu.detach().double().cpu(), logvar.detach().double().cpu()
    variance = mu.var(dim=0, unbiased=True) if mu.shape[0] > 1 else torch.zeros(mu.shape[1], dtype=mu.dtype)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)
    return variance.numpy(), kl.numpy()


@register
class VaeHealthProbe(Probe):
    """Active units and KL per latent dimension at each observation; `posterior-collapse`."""

    name = "vae-health"
    tasks = ("vae",)

    def __init__(self, every: int = 1) -> None:
        super().__init__(every)
        self.pooled_step: int | None = None
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []  # the observations of `pooled_step`
        self.timeline: list[dict[str, Any]] = []
        self.figure: str | None = None

    def setup(self, ctx: ProbeContext) -> None:
        ctx.add_chart("VAE", "ELBO terms", ["train/recon", "train/kl", "loss/train"])
        ctx.add_chart("VAE", "latent activity", ["vae/active_units", "vae/kl_per_dim_mean"])

    def on_latents(self, ctx: ProbeContext, mu: torch.Tensor, logvar: torch.Tensor, step: int) -> None:
        if step != self.pooled_step:
            self.pooled_step, self.batches = step, []
        self.batches.append((mu.flatten(1).float().cpu(), logvar.flatten(1).float().cpu()))
        variance, kl = activity(*self._pooled(step))
        entry = {"step": step, "variance": variance, "kl": kl, "active": int((variance > ACTIVE_VARIANCE).sum()),
                 "samples": sum(m.shape[0] for m, _ in self.batches)}
        if self.timeline and self.timeline[-1]["step"] == step:
            self.timeline[-1] = entry
        else:
            self.timeline.append(entry)
        ctx.log_scalar("vae/active_units", entry["active"], step)
        ctx.log_scalar("vae/kl_per_dim_mean", float(kl.mean()), step)

    def _pooled(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if len({m.shape[1] for m, _ in self.batches}) != 1:
            raise ValueError(f"vae-health: observe_latents at step {step} got batches of different latent sizes; "
                             "expected one latent size")
        return torch.cat([m for m, _ in self.batches]), torch.cat([v for _, v in self.batches])

    def finish(self, ctx: ProbeContext) -> ProbeSection | None:
        if not self.timeline:
            return None
        final = self.timeline[-1]
        self.figure = ctx.save_figure(_latent_figure(self.timeline), "vae_latents")
        latent = len(final["kl"])
        text = (f"At step {final['step']} ({final['samples']} encoded samples): {final['active']} of {latent} latent "
                f"units active (variance across the data of the posterior mean > {ACTIVE_VARIANCE}); total KL "
                f"{final['kl'].sum():.3f} nats, per dimension from {final['kl'].min():.4f} to "
                f"{final['kl'].max():.4f}.")
        return ProbeSection(title="VAE latent health", text=text, figures=[self.figure])

    def findings(self, ctx: ProbeContext) -> list[Finding]:
        if not self.timeline:
            return []
        final = self.timeline[-1]
        latent = len(final["kl"])
        allowed = int(np.floor(COLLAPSED_ACTIVE_SHARE * latent))
        kl_mean = float(final["kl"].mean())
        few_active = final["active"] <= allowed
        vanished = kl_mean < VANISHED_KL_PER_DIM
        if not (few_active or vanished):
            return []
        since = final["step"]
        for entry in reversed(self.timeline):
            if entry["active"] > allowed and float(entry["kl"].mean()) >= VANISHED_KL_PER_DIM:
                break
            since = entry["step"]
        evidence = {
            "step": final["step"], "since_step": since, "active_units": final["active"], "latent_dims": latent,
            "active_threshold_variance": ACTIVE_VARIANCE, "kl_total": round(float(final["kl"].sum()), 4),
            "kl_per_dim": [round(float(v), 4) for v in final["kl"]],
            "mu_variance_per_dim": [round(float(v), 5) for v in final["variance"]],
            "peak_active_units": max(entry["active"] for entry in self.timeline),
        }
        return [Finding(
            code="posterior-collapse", severity="critical" if final["active"] == 0 or vanished else "warning",
            title=f"Posterior collapse: {final['active']} of {latent} latent units active, KL {evidence['kl_total']:.3f} nats",
            message=(f"From step {since} on, at most {allowed} of {latent} latent units stayed active; at step "
                     f"{final['step']} {final['active']} are (peak during training: "
                     f"{evidence['peak_active_units']}) and the KL to the prior is {evidence['kl_total']:.3f} nats in "
                     f"all ({kl_mean:.4f} per dimension). The encoder gives nearly every input the prior as its "
                     "posterior, so the decoder ignores the code: samples and reconstructions are the same blur."),
            evidence=evidence, figure=self.figure,
            suggestion=("Lower the KL weight (β) or anneal it from 0 over the first epochs, check that the "
                        "reconstruction term is summed over pixels (a per-pixel mean against a summed KL weights "
                        "the KL by the pixel count), or use free bits (a KL floor per dimension); a decoder too "
                        "strong for the code (autoregressive) also causes this."),
        )]

    def state(self) -> dict[str, Any]:
        if not self.timeline:
            return {}
        final = self.timeline[-1]
        return {"step": final["step"], "active_units": final["active"], "latent_dims": len(final["kl"]),
                "kl_per_dim": [round(float(v), 4) for v in final["kl"]],
                "active_by_step": {str(e["step"]): e["active"] for e in self.timeline}}


def _latent_figure(timeline: list[dict[str, Any]]) -> Figure:
    final = timeline[-1]
    latent = len(final["kl"])
    figure, (bars, line) = new_figure(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    active = final["variance"] > ACTIVE_VARIANCE
    bars.bar(np.arange(latent), final["kl"], color=np.where(active, "tab:blue", "tab:gray"))
    bars.set_xlabel("latent dimension")
    bars.set_ylabel("KL (nats)")
    bars.set_title(f"KL per latent dimension at step {final['step']} (blue: active, {int(active.sum())}/{latent})")
    steps = [entry["step"] for entry in timeline]
    line.plot(steps, [entry["active"] for entry in timeline], marker="o", ms=3, color="tab:blue")
    line.set_ylim(-0.5, latent + 0.5)
    line.set_xlabel("step")
    line.set_ylabel("active units")
    line.set_title("active units over training")
    figure.tight_layout()
    return figure

"""A VAE's latent code over training: per latent dimension, the variance across the data of the posterior mean
(Burda et al.'s activity statistic) and the KL to the prior, one observation per step (`LatentTimeline`; several
`observe_latents` calls at one step are pooled)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def activity(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per latent dimension: the variance across the batch of the posterior mean, and the batch-mean
    KL(N(μ, σ²) ‖ N(0, 1)) in nats."""
    mu, logvar = mu.detach().double().cpu(), logvar.detach().double().cpu()
    variance = mu.var(dim=0, unbiased=True) if mu.shape[0] > 1 else torch.zeros(mu.shape[1], dtype=mu.dtype)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)
    return variance.numpy(), kl.numpy()


@dataclass(frozen=True)
class LatentObservation:
    """The pooled posteriors of one step: `variance` and `kl` per latent dimension, from `samples` encodings."""

    step: int
    variance: np.ndarray
    kl: np.ndarray
    samples: int

    def active(self, threshold: float) -> int:
        """Latent units whose posterior mean varies across the data by more than `threshold`."""
        return int((self.variance > threshold).sum())


class LatentTimeline:
    """One `LatentObservation` per step that encoded data, the batches of the latest step pooled."""

    def __init__(self) -> None:
        self.observations: list[LatentObservation] = []
        self._step: int | None = None
        self._batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, mu: torch.Tensor, logvar: torch.Tensor, step: int) -> LatentObservation:
        """Pool one batch of posterior parameters into the observation of `step`; returns that observation."""
        if step != self._step:
            self._step, self._batches = step, []
        self._batches.append((mu.flatten(1).float().cpu(), logvar.flatten(1).float().cpu()))
        if len({m.shape[1] for m, _ in self._batches}) != 1:
            raise ValueError(f"vae-health: observe_latents at step {step} got batches of different latent sizes; "
                             "expected one latent size")
        variance, kl = activity(torch.cat([m for m, _ in self._batches]), torch.cat([v for _, v in self._batches]))
        entry = LatentObservation(step, variance, kl, sum(m.shape[0] for m, _ in self._batches))
        if self.observations and self.observations[-1].step == step:
            self.observations[-1] = entry
        else:
            self.observations.append(entry)
        return entry

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def last(self) -> LatentObservation:
        return self.observations[-1]

"""`memorization`: at least `MEM_COPY_SHARE_MIN` of the generated samples (and `MEM_COPY_SHARE_FACTOR` times the
share `MEM_COPY_QUANTILE` expected from a generator that generalizes) are near-copies, and the Mann-Whitney z of
the data-copying test is below `MEM_Z_COPYING`."""

from __future__ import annotations

import numpy as np

from gendiag.findings import Finding, advice
from gendiag.quantities.memorization import Copying
from gendiag.rules.thresholds import (MEM_COPY_QUANTILE, MEM_COPY_SHARE_FACTOR, MEM_COPY_SHARE_MIN,
                                      MEM_CRITICAL_SHARE, MEM_Z_COPYING)

PAIRS_SHOWN = 6
_FEWER = ("The model reproduces its training data: use more data or augmentation, a smaller model or fewer epochs "
          "(stop at the best held-out loss), weight decay or dropout")
ADVICE = {  # `memorization`, by task
    "vae": _FEWER + "; check that the KL term is not switched off (without it the VAE is an autoencoder).",
    "gan": _FEWER + "; a discriminator that memorises the data set drives this: augment what D sees (ADA).",
    "diffusion": _FEWER + ": a denoiser fitted exactly to few samples leads every sample back to one of them.",
    "flow": _FEWER + ": the exact velocity field of few samples carries every sample onto one of them.",
    "generic": _FEWER + ".",
}


def closest_copies(copying: Copying) -> np.ndarray:
    """Indices of the `PAIRS_SHOWN` generated samples nearest a training sample, relative to its spacing."""
    return np.argsort(copying.result.generated_ratio)[:PAIRS_SHOWN]


def memorization_finding(copying: Copying | None, step: int | None, rows_seen: int, task: str,
                         figure: str | None) -> Finding | None:
    """The `memorization` finding, or None."""
    if copying is None:
        return None
    result = copying.result
    share, z = result.copy_share, result.mann_whitney_z
    if share < max(MEM_COPY_SHARE_MIN, MEM_COPY_SHARE_FACTOR * MEM_COPY_QUANTILE) or z > MEM_Z_COPYING:
        return None
    evidence = {
        "step": step, "copy_share": round(share, 4), "expected_copy_share": MEM_COPY_QUANTILE,
        "copy_ratio_threshold": result.copy_threshold, "mann_whitney_z": round(z, 2),
        "median_distance_generated": float(np.median(result.generated_distance)),
        "median_distance_heldout": float(np.median(result.heldout_distance)),
        "median_distance_ratio": round(result.median_distance_ratio, 4),
        "n_generated": len(result.generated_distance), "n_heldout": len(result.heldout_distance),
        "training_rows_seen": rows_seen, **{f"duplicates_{k}": v for k, v in copying.duplicates.items()},
        "closest_generated_to_train": [[int(i), int(result.nearest_train[i]), float(result.generated_distance[i])]
                                       for i in closest_copies(copying)],
    }
    return Finding(
        code="memorization", severity="critical" if share > MEM_CRITICAL_SHARE else "warning",
        title=f"{share:.0%} of generated samples are near-copies of training samples",
        message=(f"{share:.1%} of {len(result.generated_distance)} generated samples (step {step}) "
                 f"lie closer to a training sample, relative to the training set's local spacing, than 99% of "
                 f"held-out real samples do ({MEM_COPY_QUANTILE:.0%} expected for a generator that generalizes). "
                 f"The data-copying test agrees: z = {z:.1f} (below {MEM_Z_COPYING:g}); median distance to the "
                 f"training set {evidence['median_distance_generated']:.4g} for generated samples against "
                 f"{evidence['median_distance_heldout']:.4g} for held-out ones."),
        evidence=evidence, figure=figure,
        suggestion=advice(ADVICE, task),
    )

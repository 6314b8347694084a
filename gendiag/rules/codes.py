"""Every finding code, mapped to its quantity, its rule and its figure: one hop from a code to the code that
measures, decides and draws it. Each entry names objects as "module:attribute"; a test imports every one.
`figure` is None where a finding points at no figure of its own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CodeMap:
    """Where a finding code's measurement, rule and figure live."""

    code: str
    quantity: str
    rule: str
    figure: str | None


CODES: tuple[CodeMap, ...] = (
    # --- loss, per-time loss, gradients, timing, schedule ---

    # --- inputs, velocity field, sampler, data representation, memorization ---

    # --- GAN balance, modes, VAE health, samples against data ---
    CodeMap("gan-d-dominates", quantity="gendiag.quantities.gan_balance:BalanceLog",
            rule="gendiag.rules.gan_balance:d_dominates", figure="gendiag.figures.gan_balance:balance_figure"),
    CodeMap("gan-oscillation", quantity="gendiag.quantities.gan_balance:swing_growth",
            rule="gendiag.rules.gan_balance:oscillation", figure="gendiag.figures.gan_balance:balance_figure"),
    CodeMap("mode-collapse", quantity="gendiag.quantities.modes:CoverageTimeline",
            rule="gendiag.rules.modes:mode_collapse", figure="gendiag.figures.modes:coverage_figure"),
    CodeMap("posterior-collapse", quantity="gendiag.quantities.vae_health:LatentTimeline",
            rule="gendiag.rules.vae_health:posterior_collapse", figure="gendiag.figures.vae_health:latent_figure"),
    CodeMap("samples-unlike-data", quantity="gendiag.quantities.samples_vs_data:SamplesAgainstData",
            rule="gendiag.rules.samples_vs_data:samples_unlike_data",
            figure="gendiag.figures.samples_vs_data:samples_figure"),
    CodeMap("memorization", quantity="gendiag.quantities.memorization:CopyWatch",
            rule="gendiag.rules.memorization:memorization_finding",
            figure="gendiag.figures.memorization:copies_figure"),

)

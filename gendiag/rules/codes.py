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

    # --- autoregressive ---
    CodeMap("causal-leak", quantity="gendiag.quantities.autoregressive:dependence",
            rule="gendiag.rules.autoregressive:causal_leak", figure="gendiag.figures.autoregressive:causal_check"),
    CodeMap("train-sample-input-mismatch", quantity="gendiag.quantities.autoregressive:off_level_share",
            rule="gendiag.rules.autoregressive:sample_inputs", figure=None),
    CodeMap("ar-samples-identical", quantity="gendiag.quantities.autoregressive:distinct_rows",
            rule="gendiag.rules.autoregressive:samples_identical", figure=None),
)

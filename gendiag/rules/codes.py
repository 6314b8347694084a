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
    CodeMap("field-ignores-x", quantity="gendiag.quantities.velocity:FieldComparison",
            rule="gendiag.rules.velocity:field_findings", figure="gendiag.figures.velocity:sensitivity"),
    CodeMap("field-ignores-t", quantity="gendiag.quantities.velocity:FieldComparison",
            rule="gendiag.rules.velocity:field_findings", figure="gendiag.figures.velocity:sensitivity"),
    CodeMap("sampler-state-frozen", quantity="gendiag.quantities.sampler:SamplerRuns",
            rule="gendiag.rules.sampler:sampler_findings", figure="gendiag.figures.sampler:sampler_check"),
    CodeMap("train-sample-input-mismatch", quantity="gendiag.quantities.inputs:InputsComparison",
            rule="gendiag.rules.inputs:inputs_findings", figure="gendiag.figures.inputs:train_vs_sampling"),
    CodeMap("rendered-point-cloud", quantity="gendiag.quantities.data_repr:Representation",
            rule="gendiag.rules.data_repr:rendered", figure="gendiag.figures.data_repr:samples"),
    CodeMap("data-near-duplicates", quantity="gendiag.quantities.data_repr:Representation",
            rule="gendiag.rules.data_repr:near_duplicates", figure="gendiag.figures.data_repr:samples"),
    CodeMap("data-binary-pixels", quantity="gendiag.quantities.data_repr:Representation",
            rule="gendiag.rules.data_repr:binary_pixels", figure="gendiag.figures.data_repr:values"),
    CodeMap("data-scale-mismatch", quantity="gendiag.quantities.data_repr:Representation",
            rule="gendiag.rules.data_repr:scale_mismatch", figure="gendiag.figures.data_repr:values"),
    CodeMap("source-not-noise", quantity="gendiag.quantities.data_repr:Representation",
            rule="gendiag.rules.data_repr:source_not_noise", figure="gendiag.figures.data_repr:source_qq"),
    CodeMap("source-sampler-mismatch", quantity="gendiag.quantities.data_repr:Representation",
            rule="gendiag.rules.data_repr:source_sampler_mismatch", figure="gendiag.figures.data_repr:sources"),
    CodeMap("source-chosen", quantity="gendiag.quantities.data_repr:Representation",
            rule="gendiag.rules.data_repr:source_not_noise", figure="gendiag.figures.data_repr:sources"),

    # --- GAN balance, modes, VAE health, samples against data ---

)

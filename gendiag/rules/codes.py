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
    CodeMap("loss-nonfinite", quantity="gendiag.quantities.loss:LossSeries",
            rule="gendiag.rules.loss:nonfinite_finding", figure="gendiag.figures.loss:loss_figure"),
    CodeMap("loss-diverging", quantity="gendiag.quantities.loss:summarise_loss",
            rule="gendiag.rules.loss:judge_trend", figure="gendiag.figures.loss:loss_figure"),
    CodeMap("loss-t-imbalance", quantity="gendiag.quantities.loss_by_t:summarise_loss_by_t",
            rule="gendiag.rules.loss_by_t:judge_bins", figure="gendiag.figures.loss_by_t:loss_by_t_figure"),
    CodeMap("target-explodes", quantity="gendiag.quantities.loss_by_t:tail_fit",
            rule="gendiag.rules.loss_by_t:judge_bins", figure="gendiag.figures.loss_by_t:loss_by_t_figure"),
    CodeMap("params-stalled", quantity="gendiag.quantities.gradients:update_summary",
            rule="gendiag.rules.gradients:is_stalled", figure="gendiag.figures.gradients:gradients_figure"),
    CodeMap("no-gradient-reaches", quantity="gendiag.quantities.gradients:GradientReadings",
            rule="gendiag.rules.gradients:judge_gradients", figure="gendiag.figures.gradients:gradients_figure"),
    CodeMap("gradients-not-seen", quantity="gendiag.quantities.gradients:GradientReadings",
            rule="gendiag.rules.gradients:judge_gradients", figure=None),
    CodeMap("data-bottleneck", quantity="gendiag.quantities.timing:summarise_timing",
            rule="gendiag.rules.timing:is_bottleneck", figure="gendiag.figures.timing:timing_figure"),
    CodeMap("schedule-not-reaching-noise", quantity="gendiag.quantities.schedule:leftover_ratio",
            rule="gendiag.rules.schedule:schedule_findings", figure="gendiag.figures.schedule:schedule_figure"),

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

    # --- autoregressive ---
    CodeMap("causal-leak", quantity="gendiag.quantities.autoregressive:dependence",
            rule="gendiag.rules.autoregressive:causal_leak", figure="gendiag.figures.autoregressive:causal_check"),
    CodeMap("train-sample-input-mismatch", quantity="gendiag.quantities.autoregressive:off_level_share",
            rule="gendiag.rules.autoregressive:sample_inputs", figure="gendiag.figures.autoregressive:sampler_values"),
    CodeMap("ar-samples-identical", quantity="gendiag.quantities.autoregressive:distinct_rows",
            rule="gendiag.rules.autoregressive:samples_identical",
            figure="gendiag.figures.autoregressive:distinct_samples"),
    # --- issue 27: conditioning and guidance ---
    CodeMap("conditioning-ignored", quantity="gendiag.quantities.conditioning:measure_agreement",
            rule="gendiag.rules.conditioning:conditioning_ignored",
            figure="gendiag.figures.conditioning:agreement_figure"),
    CodeMap("null-label-untrained", quantity="gendiag.quantities.guidance:GuidanceWatch",
            rule="gendiag.rules.conditioning:null_label_untrained",
            figure="gendiag.figures.conditioning:null_label_figure"),
    # --- issue 25: sampling calls ---
    CodeMap("t-range-untrained", quantity="gendiag.quantities.sampling_calls:coverage_table",
            rule="gendiag.rules.sampling_calls:t_range_untrained",
            figure="gendiag.figures.sampling_calls:sampling_calls_figure"),
    # --- issue 25: causes ---
    CodeMap("grad-accumulating", quantity="gendiag.quantities.grad_reset:ResetWatch",
            rule="gendiag.rules.gradients:is_accumulating", figure="gendiag.figures.gradients:gradients_figure"),
    CodeMap("loss-unbounded-below", quantity="gendiag.quantities.loss:summarise_loss",
            rule="gendiag.rules.loss:judge_trend", figure="gendiag.figures.loss:loss_figure"),
    CodeMap("gan-d-output-squashed", quantity="gendiag.quantities.gan_balance:output_reading",
            rule="gendiag.rules.gan_balance:squashed", figure="gendiag.figures.gan_balance:balance_figure"),

    # --- issue 21: multi-process training ---
    CodeMap("ddp-same-noise-across-ranks", quantity="gendiag.quantities.distributed:matching_share",
            rule="gendiag.rules.distributed:same_draw_ranks",
            figure="gendiag.figures.distributed:same_noise_figure"),
    CodeMap("distributed-sampler-epoch-unset", quantity="gendiag.quantities.distributed:repeat_period",
            rule="gendiag.rules.distributed:fixed_order_ranks",
            figure="gendiag.figures.distributed:epoch_order_figure"),
    # --- issue 27: EMA copies, the optimizer, the generator's objective ---
    CodeMap("ema-lagging", quantity="gendiag.quantities.ema:EmaTrack",
            rule="gendiag.rules.ema:ema_lagging", figure="gendiag.figures.ema:ema_figure"),
    CodeMap("lr-decayed-to-zero", quantity="gendiag.quantities.optimizer:lr_fall",
            rule="gendiag.rules.optimizer:lr_decayed", figure="gendiag.figures.optimizer:lr_figure"),
    CodeMap("weight-decay-dominates", quantity="gendiag.quantities.optimizer:weight_shrink",
            rule="gendiag.rules.optimizer:weight_decay_dominates", figure="gendiag.figures.optimizer:weights_figure"),
    CodeMap("gan-g-objective-inverted", quantity="gendiag.quantities.gan_balance:BalanceLog",
            rule="gendiag.rules.gan_balance:g_objective_inverted",
            figure="gendiag.figures.gan_balance:balance_figure"),
    # --- issue 27: causes named, not symptoms ---
    CodeMap("loss-at-baseline", quantity="gendiag.quantities.regression:OutputSpread",
            rule="gendiag.rules.regression:loss_at_baseline", figure="gendiag.figures.regression:baseline_figure"),
    CodeMap("forward-process-off-schedule", quantity="gendiag.quantities.forward_process:forward_moments",
            rule="gendiag.rules.forward_process:off_schedule",
            figure="gendiag.figures.forward_process:forward_figure"),
    CodeMap("sampler-parameterization-mismatch", quantity="gendiag.quantities.diffusion_sampler:step_readings",
            rule="gendiag.rules.diffusion_sampler:sampler_findings",
            figure="gendiag.figures.diffusion_sampler:sampler_readings"),
    CodeMap("sampler-schedule-misindexed", quantity="gendiag.quantities.diffusion_sampler:last_step_fit",
            rule="gendiag.rules.diffusion_sampler:sampler_findings",
            figure="gendiag.figures.diffusion_sampler:sampler_readings"),
    CodeMap("vae-decoder-output-squashed", quantity="gendiag.quantities.vae_output:OutputRanges",
            rule="gendiag.rules.vae_output:squashed", figure="gendiag.figures.vae_output:squashed_figure"),
    CodeMap("bce-target-out-of-range", quantity="gendiag.quantities.vae_output:OutputRanges",
            rule="gendiag.rules.vae_output:bce_target", figure="gendiag.figures.vae_output:bce_figure"),
    # --- issue 27: values the run observes ---
    CodeMap("data-nonfinite", quantity="gendiag.quantities.observed:ObservedValues",
            rule="gendiag.rules.observed:observed_findings", figure="gendiag.figures.observed:nonfinite_figure"),
    CodeMap("outputs-nonfinite", quantity="gendiag.quantities.observed:ObservedValues",
            rule="gendiag.rules.observed:observed_findings", figure="gendiag.figures.observed:nonfinite_figure"),
    CodeMap("samples-nonfinite", quantity="gendiag.quantities.observed:ObservedValues",
            rule="gendiag.rules.observed:observed_findings", figure="gendiag.figures.observed:nonfinite_figure"),
)

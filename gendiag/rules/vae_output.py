"""Rules on a VAE decoder's outputs: `vae-decoder-output-squashed` (every output within [sigmoid(0), sigmoid(1)]: a
sigmoid applied twice) and `bce-target-out-of-range` (data outside [0, 1] as targets of a Bernoulli decoder whose
loss falls below 0, which a binary cross-entropy with targets in [0, 1] never does)."""

from __future__ import annotations

from gendiag.findings import Finding
from gendiag.quantities.vae_output import MARGIN, SIGMOID_0, SIGMOID_1, OutputRanges
from gendiag.rules.thresholds import BCE_OUT_OF_RANGE_SHARE, VAE_SQUASH_DATA_SHARE, VAE_SQUASH_MIN_VALUES


def squashed(ranges: OutputRanges, figure: str | None = None) -> list[Finding]:
    """The finding when at least VAE_SQUASH_MIN_VALUES sample values all lie in [0.5, 0.731], while at least
    VAE_SQUASH_DATA_SHARE of the data values lie outside it."""
    share, seen = ranges.share_outside_squash(), ranges.samples
    if share < VAE_SQUASH_DATA_SHARE or seen.values < VAE_SQUASH_MIN_VALUES or not seen.within(SIGMOID_0, SIGMOID_1):
        return []
    message = (f"The samples ({seen.values} values) all lie in [{seen.low:.4g}, {seen.high:.4g}], inside "
               f"[sigmoid(0), sigmoid(1)] = [0.5, {SIGMOID_1:.3f}], while {share:.0%} of the data values lie outside "
               f"it (data from {ranges.data.low:.3g} to {ranges.data.high:.3g}). A sigmoid applied to values already "
               "in [0, 1] gives exactly that range: the decoder's output goes through a sigmoid twice (a Sigmoid layer "
               "at the end of the decoder and torch.sigmoid in forward or the loss), so no reconstruction or sample "
               "can be darker than 0.5 or brighter than 0.73.")
    return [Finding(
        code="vae-decoder-output-squashed", severity="critical",
        title="The decoder's outputs are confined to [0.5, 0.73]: a sigmoid applied twice",
        message=message,
        evidence={"output_low": round(seen.low, 6), "output_high": round(seen.high, 6),
                  "output_values": seen.values, "data_low": round(ranges.data.low, 6),
                  "data_high": round(ranges.data.high, 6), "data_share_outside": round(share, 4),
                  "squashed_range": [SIGMOID_0, round(SIGMOID_1, 6)], "threshold_data_share": VAE_SQUASH_DATA_SHARE},
        figure=figure,
        suggestion=("Apply the sigmoid once: end the decoder with a Sigmoid and use binary_cross_entropy, or return "
                    "logits and use binary_cross_entropy_with_logits (torch.sigmoid only when sampling)."))]


def bce_target(ranges: OutputRanges, figure: str | None = None) -> list[Finding]:
    """The finding when at least BCE_OUT_OF_RANGE_SHARE of the data values lie outside [0, 1], at least
    VAE_SQUASH_MIN_VALUES sample values lie in [0, 1] (a Bernoulli decoder's means), and the loss (or `recon`) went
    below 0."""
    share, seen = ranges.share_outside_unit(), ranges.samples
    negative = negative_term(ranges)
    if share < BCE_OUT_OF_RANGE_SHARE or negative is None or seen.values < VAE_SQUASH_MIN_VALUES \
            or not seen.within(0.0, 1.0):
        return []
    name, value, step = negative
    message = (f"{share:.0%} of the data values lie outside [0, 1] (from {ranges.data.low:.3g} to "
               f"{ranges.data.high:.3g}), while the samples lie in [0, 1] as a Bernoulli decoder's do, and the "
               f"{'reconstruction term' if name == 'recon' else 'loss'} went down to {value:.4g} (step {step}). A "
               "binary cross-entropy is at least 0 for targets in [0, 1]; for targets outside it, it has no floor: "
               "the decoder is pushed to 0 or 1 wherever a target lies outside [0, 1] and the loss falls without "
               "end, whatever it does with the data.")
    return [Finding(
        code="bce-target-out-of-range", severity="critical",
        title=f"Binary cross-entropy targets outside [0, 1]: the loss reached {value:.3g}",
        message=message,
        evidence={"data_low": round(ranges.data.low, 6), "data_high": round(ranges.data.high, 6),
                  "data_share_outside": round(share, 4), "margin": MARGIN,
                  "samples_range": [round(seen.low, 6), round(seen.high, 6)],
                  "lowest": {k: [round(v, 6), s] for k, (v, s) in ranges.lowest.items()},
                  "threshold_share": BCE_OUT_OF_RANGE_SHARE},
        figure=figure,
        suggestion=("Give the binary cross-entropy targets in [0, 1]: undo the data's normalisation for the loss "
                    "((x + 1) / 2 for data in [-1, 1]; no mean/std normalisation), or use a Gaussian likelihood (MSE) "
                    "for data that is not in [0, 1]."))]


def negative_term(ranges: OutputRanges) -> tuple[str, float, int] | None:
    """The loss term `bce_target` judges: the reported `recon` where it went below 0, else the loss where it did;
    with its lowest value and that value's step. None where neither went below 0."""
    negative = {name: low for name, low in ranges.lowest.items() if low[0] < 0}
    if not negative:
        return None
    name = "recon" if "recon" in negative else next(iter(negative))
    return (name, *negative[name])

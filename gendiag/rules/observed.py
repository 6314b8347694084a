"""Rules on the values the run observed (`gendiag.quantities.observed`): NaN or infinite rows in the data
(`data-nonfinite`), in the model's own values during training (`outputs-nonfinite`: a watched network's outputs in
training calls, a VAE's latents) and in what sampling gave (`samples-nonfinite`: observed samples, the outputs of
sampling calls); and batches no probe could use (`batch-skipped`, info). Each names the first step."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding, advice
from gendiag.quantities.observed import DATA, SAMPLED, TRAINED, ObservedValues, Tally
from gendiag.rules.thresholds import OBSERVED_SAMPLES_CRITICAL_SHARE

_SAMPLES_ADVICE = {
    "gan": ("Look for the first NaN upstream: a hand-written log loss (log(D(x)) with D(x) = 0 or 1) turns NaN and "
            "then the generator's weights do; use BCEWithLogitsLoss on logits, or clamp, and lower the learning "
            "rate."),
    "vae": "Check the decoder's output layer and the log-variance (clamp it before exp); lower the learning rate.",
    "diffusion": ("Check the sampler's divisions (1/√ᾱ_t, 1/√(1-ᾱ_t) at the schedule's ends) and clip x0 "
                  "predictions; a NaN in the weights shows first in the training loss."),
    "flow": ("Check the sampler's step size and the field at its ends (a division by 1 - t or by t); lower the "
             "learning rate."),
    "generic": ("Find where the values first turn NaN: the training loss (`loss-nonfinite`), the weights, or the "
                "sampler's own arithmetic (divisions, log, exp); lower the learning rate or clip gradients."),
}


def observed_findings(observed: ObservedValues, task: str, figure: str | None = None) -> list[Finding]:
    """Every finding the counts support, in the order data, training values, samples, skipped batches; `figure`:
    the figure of the non-finite rows over the steps, named by the non-finite findings."""
    found = [_nonfinite("data-nonfinite", observed, DATA, task, figure),
             _nonfinite("outputs-nonfinite", observed, TRAINED, task, figure),
             _nonfinite("samples-nonfinite", observed, SAMPLED, task, figure), _skipped(observed)]
    return [finding for finding in found if finding is not None]


def _places(observed: ObservedValues, kinds: tuple[str, ...]) -> dict[str, Tally]:
    return {where: tally for where, tally in observed.tallies.items()
            if where.startswith(kinds) and tally.nonfinite_rows}


def _nonfinite(code: str, observed: ObservedValues, kinds: tuple[str, ...], task: str,
               figure: str | None) -> Finding | None:
    places = _places(observed, kinds)
    if not places:
        return None
    first_where, first = min(places.items(), key=lambda item: item[1].first_step)
    evidence: dict[str, Any] = {
        "first_step": first.first_step, "first_place": first_where,
        "places": {where: {"nonfinite_rows": tally.nonfinite_rows, "rows": tally.rows,
                           "share": round(tally.share, 4), "last_share": round(tally.last_share, 4),
                           "first_step": tally.first_step,
                           "last_step": tally.last_step, "batches_all_nonfinite": tally.all_nonfinite_batches}
                   for where, tally in places.items()},
    }
    listed = "; ".join(f"{where}: {tally.nonfinite_rows} of {tally.rows} rows ({tally.share:.0%}) from step "
                       f"{tally.first_step}" for where, tally in places.items())
    if code == "data-nonfinite":
        return Finding(
            code=code, severity="critical",
            title=f"The training data hold NaN or infinite values, first observed at step {first.first_step}",
            message=(f"Rows with NaN or infinite values were observed ({listed}). A NaN in a batch makes the loss "
                     "and then every weight NaN. The probes used the finite rows only."),
            evidence=evidence, figure=figure,
            suggestion=("Check the data pipeline for divisions by zero (normalising by a std of 0), log of 0, "
                        "missing values read as NaN, and the source/noise draw; assert torch.isfinite(batch).all() "
                        "where the batch is made."))
    if code == "outputs-nonfinite":
        return Finding(
            code=code, severity="critical",
            title=(f"The model's outputs turned NaN or infinite in training, first observed at step "
                   f"{first.first_step}"),
            message=(f"During training the model produced NaN or infinite values ({listed}): its weights or "
                     "activations overflowed, and it learns nothing from there on. The probes used the finite rows "
                     "only."),
            evidence=evidence, figure=figure,
            suggestion=("Lower the learning rate, clip gradients (torch.nn.utils.clip_grad_norm_), and check for "
                        "log, exp and divisions that can overflow (a log-variance passed to exp unclamped)."))
    samples = places.get("samples")
    latest = samples if samples is not None else max(places.values(), key=lambda tally: tally.last_batch[0])
    share = latest.last_share
    what = "the last samples" if samples is not None else "the last sampling call's outputs"
    evidence.update(share=round(share, 4), last_step=latest.last_batch[0])
    return Finding(
        code=code, severity="critical" if max(share, latest.share) >= OBSERVED_SAMPLES_CRITICAL_SHARE else "warning",
        title=f"{share:.0%} of {what} are NaN or infinite, first observed at step {first.first_step}",
        message=(f"Sampling gave NaN or infinite values ({listed}). The sample probes judged the finite rows only"
                 + (", and the last samples had none." if samples is not None and share >= 1 else ".")),
        evidence=evidence, figure=figure, suggestion=advice(_SAMPLES_ADVICE, task))


def _skipped(observed: ObservedValues) -> Finding | None:
    if not observed.skipped:
        return None
    listed = "; ".join(f"{where}: {skipped.count} batch{'es' if skipped.count > 1 else ''} from step "
                       f"{skipped.first_step} ({skipped.reason})" for where, skipped in observed.skipped.items())
    return Finding(
        code="batch-skipped", severity="info",
        title=f"{sum(s.count for s in observed.skipped.values())} observed batches could not be used",
        message=f"Some tensors handed to the Monitor were left out of every probe: {listed}.",
        evidence={where: vars(skipped) for where, skipped in observed.skipped.items()},
        suggestion=("Pass each observe_* call a (B, ...) tensor of real numbers with at least one row and the same "
                    "row shape every time (a (B,) tensor counts as B values of one feature)."))

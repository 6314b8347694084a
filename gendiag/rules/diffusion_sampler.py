"""Rules on how a diffusion sampler reads its network: `sampler-parameterization-mismatch` (the sampler's steps read
the output as another quantity than the network returns) and `sampler-schedule-misindexed` (the chain reads the
output right but its last step does not return the x0 estimate: ᾱ_{t-1} read at t = 0 as the schedule's end puts
noise back)."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding
from gendiag.rules.thresholds import SAMPLER_FIT, SAMPLER_LAST_STEP, SAMPLER_OTHER

NAMES = {"eps": "the noise ε", "x0": "the clean sample x0"}


def sampler_findings(measured: dict[str, Any] | None, figure: str | None = None) -> list[Finding]:
    """The findings on one sampling chain's measurements: `reading` (the chain's, from `chain_reading`), `steps`
    (`step_readings`), `trained` (`trained_reading`), `last` (`last_step_fit`), `model`, `step`; `figure`: the path
    of the figure that shows them, named in the finding."""
    if measured is None or measured["reading"] is None:
        return []
    reading, trained, model = measured["reading"], measured["trained"], measured["model"]
    steps = [{k: round(v, 6) if isinstance(v, float) else v for k, v in step.items()} for step in measured["steps"]]
    if trained is not None and trained["reading"] is not None and trained["reading"] != reading:
        return [_mismatch(measured, steps, figure)]
    last = measured["last"]
    if reading != "eps" or last is None or last["residual"] > SAMPLER_FIT:
        return []
    if abs(last["a"] - 1) <= SAMPLER_LAST_STEP and abs(last["b"]) <= SAMPLER_LAST_STEP:
        return []
    message = (f"In the sampling block at step {measured['step']} the steps before the last read the output of "
               f"`{model}` as noise and fit a DDPM/DDIM step (errors {_errors(steps, 'eps')}). The last step, from "
               f"t = {last['t']:g} (ᾱ = {last['abar']:.4g}) to the samples, should return the x0 estimate "
               f"x0̂ = (x - sqrt(1 - ᾱ)·ε̂)/sqrt(ᾱ); the samples are instead {last['a']:.3g}·x0̂ {last['b']:+.3g}·ε̂ "
               f"(relative residual {last['residual']:.2g}), {last['last_change']:.3g} of the state's size away "
               "from the last input. A sampler that reads ᾱ_{t-1} at t = 0 as alphas_cumprod[t - 1] gets "
               "alphas_cumprod[-1], the schedule's noisiest end, and puts the noise estimate back into the samples.")
    return [Finding(
        code="sampler-schedule-misindexed", severity="critical",
        title="The sampler's last step does not return the x0 estimate (schedule indexed off by one)",
        message=message,
        evidence={"model": model, "step": measured["step"], "last_step": {k: round(v, 6) for k, v in last.items()},
                  "steps": steps, "threshold_last_step": SAMPLER_LAST_STEP, "threshold_fit": SAMPLER_FIT},
        figure=figure,
        suggestion=("At the last step use ᾱ_prev = 1 (alphas_cumprod_prev = cat([1], alphas_cumprod[:-1]), indexed "
                    "by the same t as alphas_cumprod): `abar_prev = abar[t - 1] if t > 0 else 1.0`, and return x0̂ "
                    "there without adding noise."))]


def _mismatch(measured: dict[str, Any], steps: list[dict[str, Any]], figure: str | None) -> Finding:
    reading, trained, model = measured["reading"], measured["trained"], measured["model"]
    end = "ᾱ_t >= 0.98" if trained["reading"] == "x0" else "ᾱ_t <= 0.02"
    near = trained["distance_clean"] if trained["reading"] == "x0" else trained["distance_noisy"]
    message = (f"In training at {end}, where {NAMES[trained['reading']]} is nearly the input, the output of `{model}` "
               f"lies {near:.3g} of its input's size from its input: it was trained to return "
               f"{NAMES[trained['reading']]}. In the sampling block at step {measured['step']} the last steps fit "
               f"the output read as {NAMES[reading]} (relative errors {_errors(steps, reading)}) and not read as "
               f"{NAMES[trained['reading']]} ({_errors(steps, trained['reading'])}): the sampler turns the network's "
               f"answer into the wrong x0 estimate at every step.")
    fix = ("x0̂ = (x_t - sqrt(1 - ᾱ_t)·ε̂) / sqrt(ᾱ_t) with ε̂ the output" if trained["reading"] == "eps" else
           "x0̂ = output and ε̂ = (x_t - sqrt(ᾱ_t)·x0̂) / sqrt(1 - ᾱ_t)")
    return Finding(
        code="sampler-parameterization-mismatch", severity="critical",
        title=f"The sampler reads the output as {NAMES[reading]}, the network was trained on {NAMES[trained['reading']]}",
        message=message,
        evidence={"model": model, "step": measured["step"], "trained_as": trained["reading"], "sampled_as": reading,
                  "trained": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in trained.items()},
                  "steps": steps,
                  "threshold_fit": SAMPLER_FIT, "threshold_other": SAMPLER_OTHER},
        figure=figure,
        suggestion=(f"Make the sampler read the output as the training target: {fix}; or train on the quantity the "
                    "sampler expects."))


def _errors(steps: list[dict[str, Any]], reading: str) -> str:
    return ", ".join(f"{step[f'error_{reading}']:.2g}" for step in steps)

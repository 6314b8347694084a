"""Rules on the learned velocity field: does it follow x and t as much as the exact field does, and could the
exact field be known at all (the probability path)?"""

from __future__ import annotations

from gendiag.findings import Finding
from gendiag.quantities.velocity import SENSITIVITY_T_TIMES, FieldComparison
from gendiag.rules.thresholds import VELOCITY_IGNORES_T, VELOCITY_IGNORES_X


def rounded(values: dict[float, float]) -> dict[str, float]:
    """Per-t values keyed by t with two decimals, rounded to 4 places, as evidence and probe_data.json show them."""
    return {f"{t:.2f}": round(v, 4) for t, v in values.items()}


def field_findings(model: str, comparison: FieldComparison, dim: int, figure: str | None) -> list[Finding]:
    """`field-ignores-x` (critical) when at every t the learned output varies across x less than
    VELOCITY_IGNORES_X times as much as the exact field's; `field-ignores-t` (warning) likewise across t."""
    found = []
    most_x = max(comparison.sensitivity_x.values())
    if most_x < VELOCITY_IGNORES_X:
        found.append(Finding(
            code="field-ignores-x", severity="critical",
            title="The learned velocity barely depends on the input x",
            message=(f"At every t checked, the output of `{model}` varies across inputs x at most "
                     f"{most_x:.3f} times as much (relative to its size) as the exact field does. A field that "
                     "does not look at x moves every sample the same way, so sampling cannot turn noise into data."),
            evidence={"sensitivity_x_by_t": rounded(comparison.sensitivity_x),
                      "threshold": VELOCITY_IGNORES_X, "field_error_by_t": rounded(comparison.field_error)},
            suggestion=("Check that the network is fed x_t (not a constant, a detached copy or the wrong argument), "
                        "that x is on a scale the network can use (normalise it), and that it trained at all "
                        "(learning rate, gradient norms)."),
            figure=figure))
    if comparison.sensitivity_t < VELOCITY_IGNORES_T:
        found.append(Finding(
            code="field-ignores-t", severity="warning",
            title="The learned velocity barely depends on the time t",
            message=(f"At fixed inputs, the output of `{model}` changes {comparison.sensitivity_t:.3f} "
                     "times as much (relative to its size) as the exact field's when t goes from 0 to 0.9. The "
                     "exact field changes with t (it points from the noise toward the data mean at t = 0 and "
                     "toward single data points near t = 1); a field that ignores t cannot follow it."),
            evidence={"sensitivity_t": round(comparison.sensitivity_t, 4), "threshold": VELOCITY_IGNORES_T,
                      "t_values": list(SENSITIVITY_T_TIMES), "dim": dim},
            suggestion=("Give the network t in a form it can use: a sinusoidal or Fourier embedding of t (not one "
                        "raw number concatenated to many input features), or t added to every hidden layer."),
            figure=figure))
    return found


def path_unknown(path: object, known: list[str]) -> Finding:
    """Info (`probe-not-run`): the fact `path` names a path gendiag has no exact field for, so the field is not
    compared."""
    return Finding(
        code="probe-not-run", severity="info", title="Probe velocity did not run",
        message=(f"The fact path={path!r} names a probability path gendiag does not know (known: "
                 f"{', '.join(known)}), and the exact field depends on the path, so the learned field was not "
                 "compared with it (no field error, no sensitivities)."),
        evidence={"path": repr(path), "known_paths": known},
        suggestion=("Give path= one of the known names, or an object with alpha(t), beta(t), d_alpha(t) and "
                    "d_beta(t) for x_t = alpha_t·x1 + beta_t·x0 (as reference_models.paths.AffinePath)."),
        probe="velocity")

"""Rules on gradients and updates: `grad-accumulating`, `no-gradient-reaches`, `params-stalled` (also for a network
whose watched optimizer never steps) and `gradients-not-seen` per watched network, from
`gendiag.quantities.gradients.GradientReadings.summary`."""

from __future__ import annotations

from typing import Any

from gendiag.findings import Finding
from gendiag.rules.thresholds import (GRAD_ACCUM_MIN_WINDOWS, GRAD_ACCUM_SHARE, GRADIENTS_HEALTHY_RATIO_HIGH,
                                      GRADIENTS_HEALTHY_RATIO_LOW, GRADIENTS_MIN_SAMPLES,
                                      GRADIENTS_NEVER_STEPPED_STEPS, GRADIENTS_STALLED_MOVEMENT,
                                      GRADIENTS_STALLED_RATIO)

HEALTHY_RATIO = (GRADIENTS_HEALTHY_RATIO_LOW, GRADIENTS_HEALTHY_RATIO_HIGH)
NAMES_SHOWN = 8  # parameter names quoted in a finding's evidence


def is_stalled(updates: dict[str, Any]) -> bool:
    """At least GRADIENTS_MIN_SAMPLES finite measured updates, and the weights never moved, or moved (median
    ratio of the weight matrices) below GRADIENTS_STALLED_RATIO per step and below GRADIENTS_STALLED_MOVEMENT over
    the whole run; `updates` is an `update_summary`."""
    if not updates["update_samples"]:
        return False
    finite = updates["update_samples"] - updates["nonfinite_update_samples"]
    moved = finite - updates["zero_update_samples"] > 0
    slow = (moved and updates["update_ratio_median"] < GRADIENTS_STALLED_RATIO
            and updates["movement_over_run"] < GRADIENTS_STALLED_MOVEMENT)
    return bool(finite >= GRADIENTS_MIN_SAMPLES and (updates["never_moved"] or slow))


def is_accumulating(network: dict[str, Any]) -> bool:
    """The last GRAD_ACCUM_MIN_WINDOWS or more reset windows of a network, and at least GRAD_ACCUM_SHARE of all,
    saw its gradient arrive without a reset since the step before (`quantities.grad_reset`)."""
    trailing = network.get("trailing_unreset", 0)  # absent from summaries written before the reset checks
    return bool(trailing >= GRAD_ACCUM_MIN_WINDOWS
                and network.get("windows_unreset", 0) >= GRAD_ACCUM_SHARE * network.get("windows", 0))


def never_stepped(network: dict[str, Any]) -> bool:
    """A network read at its watched optimizer's step whose optimizer made no step in at least
    GRADIENTS_NEVER_STEPPED_STEPS Monitor.step calls."""
    steps_run = network["last_step"] - (network["first_step"] or 0) + 1 if network["first_step"] is not None else 0
    return bool(network["read_at"] == "optimizer step" and network["optimizer_steps"] == 0
                and steps_run >= GRADIENTS_NEVER_STEPPED_STEPS)


def judge_gradients(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with its verdicts: per network `no_gradient` (read at its optimizer's step: missing or zero at
    every one of at least GRADIENTS_MIN_SAMPLES readings; read at `Monitor.step`: backward never reached it and
    its weights never moved), `not_seen` (backward reached it, but every reading at `Monitor.step` saw none) and
    `stalled` (`is_stalled`); and `stalled` of the run (some network stalled that does get gradients)."""
    networks = {}
    for name, network in summary["networks"].items():
        none = network["readings_with_gradient"] == 0 and network["readings"] >= GRADIENTS_MIN_SAMPLES
        if network["read_at"] == "optimizer step":  # read where the optimizer uses them: what it got
            no_gradient, not_seen = none, False
        else:  # read at Monitor.step: only a gradient that never arrived, with weights that never moved
            no_gradient = none and not network["gradient_arrived"] and network["never_moved"]
            not_seen = bool(network["gradient_arrived"] and network["readings"]
                            and network["readings_unseen"] == network["readings"])
        networks[name] = {**network, "no_gradient": bool(no_gradient), "not_seen": not_seen,
                          "stalled": is_stalled(network), "never_stepped": never_stepped(network),
                          "accumulating": is_accumulating(network)}
    stalled = any((n["stalled"] or n["never_stepped"]) and not n["no_gradient"] for n in networks.values())
    return {**summary, "networks": networks, "stalled": stalled}


def gradient_findings(summary: dict[str, Any], figure: str | None) -> list[Finding]:
    """From a `judge_gradients` summary: `no-gradient-reaches` per network without gradients, `params-stalled`
    per other stalled network (or one whose optimizer never steps), `grad-accumulating` per network whose gradients
    are never reset, one `gradients-not-seen` for the networks whose gradients were never seen."""
    networks = summary["networks"]
    found = [accumulating_finding(name, network, figure)
             for name, network in networks.items() if network["accumulating"]]
    found += [no_gradient_finding(name, network, figure)
              for name, network in networks.items() if network["no_gradient"]]
    found += [never_stepped_finding(name, network, networks, figure)
              for name, network in networks.items() if network["never_stepped"] and not network["no_gradient"]]
    found += [stalled_finding(name, network, figure)
              for name, network in networks.items()
              if network["stalled"] and not network["no_gradient"] and not network["never_stepped"]]
    unseen = [name for name, network in networks.items() if network["not_seen"] and not network["no_gradient"]]
    if unseen:
        found.append(not_seen_finding(unseen, networks))
    return found


def update_evidence(network: dict[str, Any]) -> dict[str, Any]:
    evidence = {"network": network["name"]}
    evidence.update({k: network[k] for k in ("update_ratio_median", "zero_update_samples", "nonfinite_update_samples",
                                             "update_samples", "first_update_step", "last_update_step",
                                             "movement_over_run")})
    if network["lr"] is not None:
        evidence["lr"] = network["lr"]
    evidence["healthy_update_ratio"] = list(HEALTHY_RATIO)
    evidence["update_ratio_by_tensor"] = {name: float(f"{ratio:.4g}")
                                          for name, ratio in network["update_ratio_by_tensor"].items()}
    return evidence


def stalled_finding(name: str, network: dict[str, Any], figure: str | None) -> Finding:
    lr = f" (learning rate {network['lr']:g})" if network.get("lr") is not None else ""
    evidence = update_evidence({**network, "name": name})
    if network["never_moved"]:
        return Finding(
            code="params-stalled", severity="critical", title=f"The weights of {name} never change",
            message=(f"In all {network['zero_update_samples']} measured updates with finite weights (steps "
                     f"{network['first_update_step']}–{network['last_update_step']}) the weights of {name} were "
                     f"exactly the same as one step before{lr}: {name} does not train."),
            evidence=evidence,
            suggestion=("Call optimizer.step() after loss.backward(), pass the model's parameters to the optimizer "
                        "(not a copy's), and check that the learning rate is not 0."),
            figure=figure,
        )
    return Finding(
        code="params-stalled", severity="warning", title=f"The weights of {name} barely move",
        message=(f"A step changes the weight matrices of {name} by a median {network['update_ratio_median']:.2g} "
                 f"of their size{lr}, against about 1e-3 in healthy training (1e-4 to 1e-2). At that rate the "
                 f"whole run moves them by about {network['movement_over_run']:.2%} of their size."),
        evidence=evidence,
        suggestion="Raise the learning rate (Adam: 1e-4 to 1e-3 is a usual start) and check any scheduler's factor.",
        figure=figure,
    )


def no_gradient_finding(name: str, network: dict[str, Any], figure: str | None) -> Finding:
    parameters = network["parameters"]
    evidence: dict[str, Any] = {
        "network": name, "read_at": network["read_at"], "readings": network["readings"],
        "readings_with_gradient": 0, "steps": [network["first_step"], network["last_step"]],
        "gradient_arrived": network["gradient_arrived"],
        "other_networks_with_gradient": network["other_networks_with_gradient"],
        "parameters": parameters[:NAMES_SHOWN] + ([f"... {len(parameters) - NAMES_SHOWN} more"]
                                                  if len(parameters) > NAMES_SHOWN else []),
    }
    if network["optimizer_steps"] is not None:
        evidence["optimizer_steps"] = network["optimizer_steps"]
    if network["update_samples"]:
        evidence["zero_update_samples"] = network["zero_update_samples"]
    others = network["other_networks_with_gradient"]
    contrast = f" while {', '.join(others)} got gradients" if others else ""
    if network["read_at"] == "optimizer step":
        where = (f"at each of the {network['readings']} readings taken just before its optimizer's step (optimizer "
                 f"steps {network['optimizer_steps']}), every gradient of {name} was missing or exactly zero")
    else:
        where = (f"in {network['readings']} readings, no backward pass put a gradient into any parameter of {name}, "
                 f"and its weights never changed in {network['zero_update_samples']} measured updates")
    if network["gradient_arrived"]:
        cause = (f"Gradients did reach {name} in backward, so they are cleared before its optimizer uses them (a "
                 "zero_grad between loss.backward() and optimizer.step()) or they are exactly zero (a loss term "
                 "multiplied by 0, every unit inactive).")
        suggestion = (f"Call zero_grad before loss.backward() (or after optimizer.step()), never between them; check "
                      f"that {name}'s loss term has a non-zero weight.")
    else:
        cause = (f"Likely causes: a .detach() (or torch.no_grad()) between {name}'s output and the loss it is trained "
                 f"on — in a GAN, the generator's step must call D(fake), not D(fake.detach()) —, {name}'s parameters "
                 "set to requires_grad=False, or an optimizer built over other parameters than the ones the loss "
                 "reaches.")
        suggestion = (f"Follow {name}'s output to the loss of its own step and remove the detach or no_grad on that "
                      f"path; check requires_grad of {name}'s parameters and which parameters its optimizer holds.")
    return Finding(
        code="no-gradient-reaches", severity="critical", title=f"No gradient reaches {name}",
        message=f"Over steps {network['first_step']}–{network['last_step']}, {where}{contrast}: {name} does not "
                f"train. {cause}",
        evidence=evidence, suggestion=suggestion, figure=figure,
    )


def not_seen_finding(names: list[str], networks: dict[str, Any]) -> Finding:
    """Networks whose gradients backward did fill but that were always cleared (or zero) when Monitor.step ran."""
    listed = ", ".join(names)
    readings = {name: networks[name]["readings"] for name in names}
    return Finding(
        code="gradients-not-seen", severity="info", title=f"No gradient was present when Monitor.step ran ({listed})",
        message=(f"Backward did put gradients into {listed}, but at every one of the readings taken at Monitor.step "
                 f"({readings}) they were missing or exactly zero: the loop clears them before Monitor.step "
                 "(optimizer.zero_grad() after optimizer.step() and before mon.step). Their gradient norms are left "
                 "out of the report rather than shown as zeros; the update-to-weight ratios are still measured."),
        evidence={"networks": names, "readings": readings,
                  "gradient_arrived": {n: networks[n]["gradient_arrived"] for n in names}},
        suggestion=("Pass optimizer= to mon.watch(model, optimizer=opt) (or call mon.watch_optimizer(opt)): the "
                    "gradients are then read just before each optimizer step, whatever the loop's order."),
    )




def accumulating_finding(name: str, network: dict[str, Any], figure: str | None) -> Finding:
    """`grad-accumulating`: the gradients of `name` are not reset between steps."""
    since = network["unreset_since_step"]
    first, last = network["grad_norm_first"], network["grad_norm_last"]
    growth = (f" Its gradient norm went from {first:.3g} to {last:.3g} over the run: each step adds the new batch's "
              "gradient to all the earlier ones." if first is not None and last is not None else "")
    where = "its optimizer's step" if network["read_at"] == "optimizer step" else "Monitor.step"
    return Finding(
        code="grad-accumulating", severity="critical",
        title=f"The gradients of {name} are never reset: they add up step after step (since step {since})",
        message=(f"In {network['windows_unreset']} of {network['windows']} checks, the last "
                 f"{network['trailing_unreset']} in a row since step {since}, every backward pass found the "
                 f"gradients of {name} still holding what the step before (at {where}) used: neither "
                 f"zero_grad() nor set-to-None happened in between, so the gradient a step uses is the sum of all "
                 f"earlier ones.{growth}"),
        evidence={"network": name, "windows_checked": network["windows"],
                  "windows_without_reset": network["windows_unreset"],
                  "last_windows_without_reset": network["trailing_unreset"], "since_step": since,
                  "read_at": network["read_at"], "grad_norm_first": first, "grad_norm_last": last},
        suggestion=(f"Call zero_grad() on the optimizer that holds {name}'s parameters (or {name}.zero_grad()) once "
                    "per step, before loss.backward() or right after optimizer.step(); in a loop with several "
                    "optimizers, each one's own. To accumulate over micro-batches on purpose, reset after each "
                    "optimizer step."),
        figure=figure,
    )


def never_stepped_finding(name: str, network: dict[str, Any], networks: dict[str, Any],
                          figure: str | None) -> Finding:
    """`params-stalled` (critical) for a network whose watched optimizer never made a step."""
    stepped = {other: n["optimizer_steps"] for other, n in networks.items()
               if other != name and n["optimizer_steps"]}
    contrast = (" while " + ", ".join(f"the optimizer of {other} made {steps}" for other, steps in stepped.items())
                if stepped else "")
    return Finding(
        code="params-stalled", severity="critical", title=f"The optimizer of {name} never steps",
        message=(f"Over steps {network['first_step']}–{network['last_step']} the optimizer watched for {name} made "
                 f"no step{contrast}: the weights of {name} stay as they were initialised."),
        evidence={"network": name, "optimizer_steps": 0, "steps": [network["first_step"], network["last_step"]],
                  "other_optimizer_steps": stepped, "gradient_arrived": network["gradient_arrived"]},
        suggestion=(f"Call the step() of {name}'s optimizer after its loss.backward() in every round (in a GAN, "
                    "each player's own optimizer); check that the optimizer passed to mon.watch is the one the loop "
                    "steps."),
        figure=figure,
    )

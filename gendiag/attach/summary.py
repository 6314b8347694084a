"""The report section `gendiag attach` adds: what it inferred from the script, from what evidence, and what it
could not see (with the flag that supplies it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gendiag.attach.infer import trained_by
from gendiag.attach.schedule import FULL_ROUNDS, ROWS_PER_ROUND, SHARE, TIMED
from gendiag.attach.session import WARMUP_ROUNDS

if TYPE_CHECKING:
    from gendiag.attach.session import Session

TITLE = "What gendiag attach inferred"


def inferred_section(session: "Session", header: str = "") -> tuple[str, str]:
    """(title, markdown text) of the section."""
    inference = session.inference
    lines = [header] if header else []
    if inference is not None:
        lines.append(f"**Task: {inference.task}**, because " + "; ".join(inference.reasons) + ".")
    lines += ["", _networks(session), ""]
    lines += [f"- {item}" for item in _items(session)]
    gaps = _gaps(session)
    if gaps:
        lines += ["", "What this run could not read, and what went without it:", ""] + [f"- {gap}" for gap in gaps]
    return TITLE, "\n".join(lines)


def _networks(session: "Session") -> str:
    networks = list(session.networks.values())
    if not networks:
        return "No network (a module with parameters called from outside any module) was called."
    owners = trained_by(networks, session.optimizers)
    watched = set(session.monitor.ctx.models) if session.monitor is not None else set()
    roles = {name: role for role, name in session.inference.roles.items()} if session.inference else {}
    rows = ["| network | role | parameters | call convention | optimizer | training calls | sampling calls | "
            "evaluation calls left out | watched |", "|---|---|---|---|---|---|---|---|---|"]
    for n in networks:
        parameters = sum(p.numel() for p in n.module.parameters())
        convention = n.convention.describe() if n.convention is not None else "no batch argument"
        owner = f"#{owners[n.name] + 1}" if n.name in owners else "none"
        shown = "yes" if n.name in watched else "no"
        rows.append(f"| `{n.name}` | {roles.get(n.name, '')} | {parameters:,} | {convention} | {owner} | "
                    f"{n.train_calls} | {n.sampling_calls} | {n.skipped_calls} | {shown} |")
    return "\n".join(rows)


def _items(session: "Session") -> list[str]:
    items = [f"{len(session.optimizers)} optimizer(s); one gendiag step per round of optimizer steps (from one step "
             f"of optimizer #1 to its next): {session.rounds} rounds, the first "
             f"{min(session.rounds, WARMUP_ROUNDS)} read before the task was known and left out of the probes."]
    recorded = _recorded(session)
    if recorded:
        items.append(recorded)
    losses = f"{session.backward_passes} backward passes"
    if session.recognised:
        kinds = ", ".join(f"{count} through `{node}`" for node, count in session.recognised.items())
        losses += f"; the regression (per-sample losses and targets) read from the graph in {kinds}"
    if session.unrecognised:
        shapes = "; ".join(f"`{shape}` ({count}×)" for shape, count in session.unrecognised.most_common(3))
        losses += f"; not a squared error on a watched output: {shapes}"
    items.append(losses + ".")
    if session.data_seen:
        items.append("Data batches shown to the probes: " + ", ".join(
            f"{count} from {origin}" for origin, count in session.data_seen.items()) + (
            f" (the data end of time, t = {session._data_end():g}, is the end the sampler walks towards)"
            if "end points of the regression target" in session.data_seen else "") + ".")
    if session.sampling_runs:
        items.append(f"{session.sampling_runs} sampling runs (calls without gradients or in eval mode, one time per "
                     f"row); {session.sources_seen} distinct start batches shown as the source, "
                     f"{session.samples_seen} batches of samples.")
    if session.stopped not in (None, "finished"):
        items.append(f"Observation stopped early: {session.stopped} (traceback in `{session.error_file}`); the "
                     "report holds what was measured until then.")
    return items


def _recorded(session: "Session") -> str | None:
    """Which rounds were recorded, and why the others were not."""
    after = session.rounds - WARMUP_ROUNDS
    if session.monitor is None or after <= 0:
        return None
    if session.recorded_rounds >= after:
        return f"All {after} rounds after the warm-up were recorded (the first {FULL_ROUNDS} always are)."
    schedule = session.schedule
    why = f"the interval that keeps gendiag's work under {SHARE:.0%} of the script's time"
    if schedule.step_seconds is not None and schedule.cost_seconds is not None:
        why += (f": a round of the script took {schedule.step_seconds * 1e3:.3g} ms and recording one "
                f"{schedule.cost_seconds * 1e3:.3g} ms more")
    if schedule.batch is not None:
        why += f"; at most the training batch ({schedule.batch} rows) over {ROWS_PER_ROUND}"
    if schedule.longest_allowed() >= TIMED:
        why += f"; at least {TIMED}, so that rounds are still left alone to time the script by"
    return (f"{session.recorded_rounds} of the {after} rounds after the warm-up were recorded and shown to the "
            f"probes: the first {FULL_ROUNDS}, then one round in k, k {schedule.every} at the end ({why}). On the "
            "other rounds the hooks only counted calls and steps.")


def _gaps(session: "Session") -> list[str]:
    task = session.inference.task if session.inference is not None else None
    gaps = []
    if task in ("flow", "diffusion") and not session.recognised:
        gaps.append("no loss was recognised as a squared error on the watched network's output, so `loss_by_t` had "
                    "no per-sample losses or times (no `loss-t-imbalance`, no `target-explodes`) and, without a "
                    "DataLoader, no data end points reached `data_repr`, `inputs` and `velocity`. Recognised: "
                    "`F.mse_loss(pred, target)` and `((pred - target) ** 2)` reduced by mean or sum.")
    if not session.data_seen:
        gaps.append("no data batch was seen (no DataLoader, and no data implied by the loss), so the data probes "
                    "(`data_repr`, `samples_vs_data`, the input scale of `inputs`) went without.")
    if task in ("flow", "diffusion") and not session.sampling_runs:
        gaps.append("no sampling was seen (calls under `torch.no_grad()`/`inference_mode()` or in eval mode with one "
                    "time for all rows), so there is no source, no sampling inputs and no samples to compare.")
    if task == "diffusion":
        gaps.append("a diffusion sampler's samples cannot be read from its calls without its schedule; the `schedule` "
                    "fact (`--facts`) lets the schedule probe run.")
    if task == "generic":
        gaps.append("the task was not recognised; `--task flow|diffusion|gan|vae` picks the probes for it.")
    gaps.append("what inference cannot see: a network fed `cat([x, t])` reads as having no time; a "
                "continuous-time diffusion model with t in [0, 1] reads as flow; a validation pass with one time for "
                "all rows reads as sampling; losses other than squared errors give no per-sample values. "
                "`--task` and `--facts FILE.yaml` (image_shape, schedule, modes, ...) supply what is missing.")
    return gaps


"""Calibration: every finding code's error rates, measured on loops written as users write them (issue 25, item 8).

Every task's healthy loop (benchmarks/calibration_loops.py: flow matching, DDPM, GAN, VAE, autoregressive,
conditional flow, a class-conditional DDPM with classifier-free guidance, flow sampled from an EMA copy) runs over
SEEDS seeds with the task's default probes; each code in `CALIBRATION` also has broken loops (a loop and one
realistic bug), run over BROKEN_SEEDS seeds. One results row per code: false alarms (healthy runs
where the code was raised at warning or above; goal 0 of N), detections of its broken runs, and where a statistic
is read, the margin: the statistic of the healthiest and the most broken run against the rule's threshold. One more
row counts healthy runs with any warning at all. Findings are read from the probes (`Probe.findings`, callable at any
time) once training and sampling are done, without drawing the report.

Every code the build raises (`gendiag.findings.STAGES`) gets a row, in that order; `CALIBRATION` is the table to
extend: a code's `Entry` names its broken loops and, where the margin is measured, its `Margin`s: a statistic read
from the probes' states (before finish: the gradients and per-t loss probes keep theirs only at finish, so their
codes have none yet) and the threshold it is judged against. A code without an entry is still counted for false
alarms ("no broken loop yet"); an entry whose code the build does not raise yet (`grad-accumulating`,
`loss-unbounded-below`, `gan-d-output-squashed` until issue 25's other change lands) is not run and its row says
"pending". Each row lists the thresholds that cite it (`gendiag.rules.thresholds.CALIBRATION_ROWS`).

As measured before those codes landed, the broken loops written for them were named only through symptoms:
flow/no-zero-grad as `train-sample-input-mismatch`, vae/kl-sign as `loss-diverging`, gan/d-sigmoid not at all, and
gan/d-never-stepped (the `params-stalled` row) only as `samples-unlike-data`. Later: vae/kl-sign was missed by
`loss-unbounded-below` until loss.unbounded_depth (it plunges, then swings), and `samples-unlike-data` warned on the
healthy GAN at seed 4, a real poor fit (a blob with 1% of the samples), until the GAN loop was made to train
(calibration_loops.GAN_LATENT, LOOP_STEPS). Issue 27's codes have broken loops since: each is named, except an
ancestral sampler that reads the predicted noise as x0 (ddpm/sampler-reads-x0): at this schedule's last steps
DDPM's added noise is a large share of the state, so neither reading fits a step (relative errors 0.53-0.75 read
as x0, 0.70-1.5 as noise, at seed 0) and `sampler-parameterization-mismatch` stays silent; the same fault in a
DDIM sampler (ddpm/ddim-reads-x0) is named.

Every run is STEPS steps (the healthy DDPM loop still warns at 120: it is not trained yet), a GAN LOOP_STEPS; the
full size (SEEDS seeds of 8 healthy loops, BROKEN_SEEDS of each of 29 broken ones) is 98 runs of a few seconds
each: 253 s on one core; `quick` (QUICK_SEEDS seeds, one broken seed) took 84 s for 22 runs on one core
shared with other work (before the GAN's 600 steps and five more broken loops), its rows marked quick and its `met`
left empty. Run it alone: `python -m benchmarks --only bench_calibration [--quick]`."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import gendiag
from benchmarks.calibration_loops import LOOPS
from gendiag.findings import STAGES, Finding
from gendiag.rules.thresholds import THRESHOLDS, calibration_rows

FULL_ONLY = True
SEEDS, QUICK_SEEDS = 5, 2
BROKEN_SEEDS, QUICK_BROKEN_SEEDS = 2, 1
STEPS = 300
LOOP_STEPS = {"gan": 600}  # a GAN trains two networks against each other: at 300 steps it had not fitted the blobs
RAISED = ("warning", "critical")

Statistic = Callable[[dict[str, Any]], "float | None"]


@dataclass(frozen=True)
class Margin:
    """A statistic read from the probes' states and the threshold (a name in THRESHOLDS) its rule judges it against;
    `fires_below` for a rule that fires when the statistic is under the threshold."""

    statistic: Statistic
    threshold: str
    fires_below: bool = False


@dataclass(frozen=True)
class Entry:
    """A code's broken loops (loop name, bug) and, where they are measured, its margins."""

    code: str
    broken: tuple[tuple[str, str], ...]
    margins: tuple[Margin, ...] = ()


def _restart_residual(states: dict[str, Any]) -> float | None:
    """The smallest residual of the sampling blocks' restart fit (how exactly each input less the first is a multiple
    of the previous output); 0 for a state that never moves."""
    motions = states.get("sampling_calls", {}).get("motions", [])
    values = [0.0 if m["largest_change"] < THRESHOLDS["sampler.frozen"].value else m["restart_residual"]
              for m in motions]
    values = [v for v in values if v is not None]
    return min(values) if values else None


def _read(probe: str, key: str) -> Statistic:
    """The number `key` of probe `probe`'s state, None where the probe did not run or has none."""
    def statistic(states: dict[str, Any]) -> float | None:
        value = states.get(probe, {}).get(key)
        return None if value is None else float(value)

    return statistic


def _leftover(states: dict[str, Any]) -> float | None:
    """The data's share left at the last diffusion step against the noise (`leftover_ratio`)."""
    schedule = states.get("schedule", {})
    if "signal_last" not in schedule:
        return None
    noise = math.sqrt(max(1.0 - schedule["alpha_bar_last"], 0.0))
    return math.inf if noise == 0 else schedule["signal_last"] * (schedule["data_rms"] or 1.0) / noise


def _active_share(states: dict[str, Any]) -> float | None:
    health = states.get("vae-health", {})
    return health["active_units"] / health["latent_dims"] if health.get("latent_dims") else None


def _rise(states: dict[str, Any]) -> float | None:
    """The loss's rise after its best window, in units of that level; None for a GAN, whose rising loss is only
    noted (info)."""
    return None if "gan-balance" in states else _read("loss", "rise")(states)


def _coverage_share(states: dict[str, Any]) -> float | None:
    """The samples' coverage of the data rows as a share of data-against-data coverage (the rule also asks W2 over
    samples_vs_data.coverage_w2_floor floors)."""
    gap = states.get("samples_vs_data", {})
    return gap["coverage"] / gap["coverage_floor"] if gap.get("coverage_floor") else None


def _input_ratio(states: dict[str, Any]) -> float | None:
    """The largest gap between training and sampling inputs over the bins of t (the rule also asks significance)."""
    ratios = [r for r in states.get("inputs", {}).get("ratios", []) if r == r]
    return max(ratios) if ratios else None


def _source_gap(states: dict[str, Any]) -> float | None:
    """The largest energy coefficient between the training source and what sampling starts from (the rule also asks
    significance at data_repr.source_significance)."""
    gaps = [value["energy_coefficient"] for key, value in states.get("data_repr", {}).items()
            if key.startswith("source_vs_")]
    return max(gaps) if gaps else None


def _static(states: dict[str, Any]) -> float | None:
    """How much the training inputs change over t, against the data-source scale (inputs that do not change over t
    are the rule's other path)."""
    change = states.get("inputs", {}).get("t_change")
    return None if not change else change["ratio"]


CALIBRATION: tuple[Entry, ...] = (
    Entry("sampler-state-frozen", (("flow", "sampler-still"), ("flow", "sampler-restart"), ("ddpm", "sampler-still")),
          (Margin(_restart_residual, "sampling_calls.restart_residual", fires_below=True),)),
    Entry("t-range-untrained", (("ddpm", "t-quarter"),),
          (Margin(_read("sampling_calls", "untrained_share"), "sampling_calls.t_untrained_warning"),)),
    Entry("train-sample-input-mismatch", (("flow", "x0-input"),),
          (Margin(_input_ratio, "inputs.warning_ratio"), Margin(_static, "inputs.static_ratio", fires_below=True))),
    Entry("schedule-not-reaching-noise", (("ddpm", "schedule-short"),),
          (Margin(_leftover, "schedule.leftover_warning"),)),
    Entry("data-scale-mismatch", (("flow", "data-unscaled"),),
          (Margin(_read("data_repr", "scale_ratio"), "data_repr.scale_high"),)),
    Entry("source-sampler-mismatch", (("flow", "sampler-wide"),),
          (Margin(_source_gap, "data_repr.source_min_coefficient"),)),
    Entry("no-gradient-reaches", (("gan", "g-detached"),)),
    Entry("posterior-collapse", (("vae", "kl-heavy"),),
          (Margin(_active_share, "vae-health.collapsed_active_share", fires_below=True),)),
    Entry("loss-nonfinite", (("autoregressive", "lr-huge"),)),
    Entry("loss-diverging", (("flow", "lr-growing"),), (Margin(_rise, "loss.rise"),)),
    Entry("loss-t-imbalance", (("ddpm", "score-target"),)),
    Entry("params-stalled", (("gan", "d-never-stepped"),)),
    Entry("grad-accumulating", (("flow", "no-zero-grad"),)),
    Entry("loss-unbounded-below", (("vae", "kl-sign"),), (Margin(_read("loss", "fall"), "loss.unbounded_depth"),)),
    Entry("gan-d-output-squashed", (("gan", "d-sigmoid"),)),
    Entry("conditioning-ignored", (("conditional", "labels-shuffled"),)),
    Entry("null-label-untrained", (("guided", "no-label-dropout"),)),
    Entry("ema-lagging", (("ema", "decay-high"),)),
    Entry("forward-process-off-schedule", (("ddpm", "no-sqrt"),)),
    Entry("loss-at-baseline", (("ddpm", "other-noise"),)),
    Entry("sampler-parameterization-mismatch", (("ddpm", "sampler-reads-x0"), ("ddpm", "ddim-reads-x0"))),
    Entry("sampler-schedule-misindexed", (("ddpm", "ddim-wraps"),)),
    Entry("lr-decayed-to-zero", (("flow", "lr-to-zero"),)),
    Entry("weight-decay-dominates", (("flow", "weight-decay"),)),
    Entry("gan-g-objective-inverted", (("gan", "g-inverted"),)),
    Entry("samples-unlike-data", (("flow", "sampler-sign"),),
          (Margin(_read("samples_vs_data", "mean_offset"), "samples_vs_data.offset_warning"),
           Margin(_read("samples_vs_data", "w2_over_floor"), "samples_vs_data.w2_floor_warning"),
           Margin(_coverage_share, "samples_vs_data.coverage_warning", fires_below=True))),
)


def run(quick: bool = False) -> list[dict[str, Any]]:
    seeds = QUICK_SEEDS if quick else SEEDS
    broken_seeds = QUICK_BROKEN_SEEDS if quick else BROKEN_SEEDS
    jobs = [(task, None, seed) for task in LOOPS for seed in range(seeds)]
    jobs += [(loop, bug, seed) for entry in known() for loop, bug in entry.broken for seed in range(broken_seeds)]
    results: dict[tuple[str, str | None, int], tuple[list[Finding], dict[str, Any]]] = {}
    columns = (TextColumn("calibration {task.fields[run]:<32}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with tempfile.TemporaryDirectory() as out, Progress(*columns) as progress:
        bar = progress.add_task("runs", total=len(jobs), run="")
        for loop, bug, seed in jobs:
            name = f"{loop}{'' if bug is None else '/' + bug} seed {seed}"
            progress.update(bar, run=name)
            if (loop, bug, seed) not in results:
                results[(loop, bug, seed)] = _run(loop, bug, seed, LOOP_STEPS.get(loop, STEPS),
                                                  Path(out) / name.replace(" ", "_").replace("/", "-"))
            progress.advance(bar)
    return _rows(results, seeds, quick)


def known() -> list[Entry]:
    """One entry per code this build raises (listed in `STAGES`), in the order of `STAGES`: the one in
    `CALIBRATION`, or one without broken loops (its false alarms are still counted)."""
    listed = {entry.code: entry for entry in CALIBRATION}
    return [listed.get(code, Entry(code, ())) for codes in STAGES.values() for code in codes]


def _run(loop: str, bug: str | None, seed: int, steps: int, run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    """One loop's findings and its probes' states, read without drawing the report."""
    monitor: gendiag.Monitor = LOOPS[loop](run_dir, seed, steps, bug)
    findings = [finding for probe in monitor.probes for finding in probe.findings(monitor.ctx)]
    states = {probe.name: probe.state() for probe in monitor.probes}
    monitor.close()
    return findings, states


def _rows(results: dict, seeds: int, quick: bool) -> list[dict[str, Any]]:
    healthy = {key: value for key, value in results.items() if key[1] is None}
    size = f" (quick: {seeds} seeds)" if quick else ""
    rows = []
    staged = {entry.code for entry in known()}
    for entry in known() + [entry for entry in CALIBRATION if entry.code not in staged]:
        if entry.code not in staged:
            rows.append({"benchmark": "calibration", "figure": entry.code, "median": None, "spread": None,
                         "unit": "pending", "goal": "0 false alarms, every broken run detected", "met": None,
                         "note": f"pending: this build does not raise {entry.code} yet (broken loops written: "
                                 f"{', '.join(f'{loop}/{bug}' for loop, bug in entry.broken)})"})
            continue
        alarms = [f"{loop} seed {seed}" for (loop, _, seed), (found, _) in healthy.items()
                  if any(f.code == entry.code and f.severity in RAISED for f in found)]
        broken = {key: value for key, value in results.items() if key[1] is not None and (key[0], key[1]) in
                  entry.broken}
        detected = [key for key, (found, _) in broken.items()
                    if any(f.code == entry.code and f.severity in RAISED for f in found)]
        missed = sorted(f"{loop}/{bug} seed {seed}" for loop, bug, seed in set(broken) - set(detected))
        note = ([f"detected {len(detected)} of {len(broken)} broken runs "
                 f"({', '.join(sorted({f'{k[0]}/{k[1]}' for k in broken}))})"] if broken else
                ["no broken loop yet: false alarms only"])
        if missed:
            note.append(f"missed: {', '.join(missed)}")
        if alarms:
            note.append(f"false alarms: {', '.join(alarms)}")
        if broken:
            note.append(_margin(entry, healthy, broken))
        cited = [name for name in THRESHOLDS if entry.code in (calibration_rows(name) or ())]
        if cited:
            note.append(f"thresholds: {', '.join(cited)}")
        rows.append({"benchmark": "calibration", "figure": entry.code, "median": float(len(alarms)), "spread": None,
                     "unit": f"false alarms of {len(healthy)} healthy runs", "goal": "0 false alarms, every broken "
                     "run detected", "met": None if quick else (not alarms and len(detected) == len(broken)),
                     "note": "; ".join(note) + size})
    noisy = sorted({f"{loop} seed {seed}: {', '.join(sorted({f.code for f in found if f.severity in RAISED}))}"
                    for (loop, _, seed), (found, _) in healthy.items() if any(f.severity in RAISED for f in found)})
    rows.append({"benchmark": "calibration", "figure": "any code", "median": float(len(noisy)), "spread": None,
                 "unit": f"healthy runs of {len(healthy)} with a warning", "goal": "0",
                 "met": None if quick else not noisy,
                 "note": ("; ".join(noisy) if noisy else f"no warning on any healthy run ({', '.join(LOOPS)})") + size})
    return rows


def _margin(entry: Entry, healthy: dict, broken: dict) -> str:
    """Per margin, the healthiest and the most broken statistic against its threshold, or why there is none."""
    if not entry.margins:
        return "margin not measured (no statistic read for this code yet)"
    return "; ".join(_one_margin(margin, healthy, broken) for margin in entry.margins)


def _one_margin(margin: Margin, healthy: dict, broken: dict) -> str:
    limit = THRESHOLDS[margin.threshold].value
    sick = [v for v in (margin.statistic(states) for _, states in broken.values()) if v is not None]
    well = [v for v in (margin.statistic(states) for _, states in healthy.values()) if v is not None]
    pick_well, pick_sick = (min, max) if margin.fires_below else (max, min)
    parts = [f"threshold {margin.threshold} = {limit:g}"]
    parts.append(f"healthy runs nearest to it {pick_well(well):.3g}" if well else "no healthy run measured")
    parts.append(f"broken runs nearest to it {pick_sick(sick):.3g}" if sick else "no broken run measured")
    return ", ".join(parts)

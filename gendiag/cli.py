"""The `gendiag` command: run cases, list them, re-render and compare reports."""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from rich.console import Console
from rich.table import Table

from gendiag import __version__
from gendiag.errors import RunInterrupted
from gendiag.probes.base import TASKS

if TYPE_CHECKING:
    from gendiag.report import Report

SHIPPED_CASES = Path(__file__).resolve().parent / "cases"  # package data; the repository's cases/ links here
console = Console(stderr=False, highlight=False)
errors = Console(stderr=True, highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except RunInterrupted as stop:
        errors.print(f"gendiag: {stop}; the partial report is in the run folder", markup=False)
        return stop.exit_code
    except KeyboardInterrupt:
        errors.print("gendiag: interrupted")
        return 130
    except (ValueError, FileNotFoundError) as error:
        if args.debug:
            raise
        one_line = " ".join(str(error).split())  # e.g. pandas' parser errors end in a newline
        errors.print(f"gendiag: error: {one_line}", markup=False, soft_wrap=True)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gendiag", description="Diagnose why a generative model will not train.")
    parser.add_argument("--version", action="version", version=f"gendiag {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a case file end to end", description="Train a case with the Monitor "
                         "attached, then print the run folder and its findings.")
    run.add_argument("case", type=Path, nargs="?", help="a case file, e.g. cases/flattened_moons.yaml, or the name "
                     "of a shipped case (`gendiag list`), e.g. flattened_moons")
    run.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                     help="continue an interrupted run from its last checkpoint (same folder, same settings)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a value of the case (repeatable), e.g. --set training.steps=500")
    run.add_argument("--profile", default=None, help="a named profile of the case (e.g. faithful)")
    run.add_argument("--out", type=Path, default=None, help="root folder for the run (default: the case's output.root)")
    run.add_argument("--seed", type=int, default=None, help="random seed (overrides the case's seed)")
    run.add_argument("--threads", type=int, default=None, metavar="N",
                     help="torch threads (overrides the case's run.threads; default: OMP_NUM_THREADS when set, else "
                     "the physical cores available); results repeat bit for bit for a fixed seed and thread count")
    run.add_argument("--stop-on", choices=("warning", "critical"), default=None,
                     help="end the run at the first live check that finds a finding this severe (or worse): the "
                     "report is written and says so, the checkpoint is kept, the exit status is 0")
    run.set_defaults(handler=_cmd_run)

    listing = sub.add_parser("list", help="list the cases with a one-line description each",
                             description="List the case files in a folder, one line each: the first sentence of "
                             "the case's description, cut to the terminal's width.")
    listing.add_argument("--dir", type=Path, default=SHIPPED_CASES,
                         help="folder of case files (default: the cases shipped with gendiag, from any folder)")
    listing.add_argument("-v", "--verbose", action="store_true", help="each case's whole description")
    listing.set_defaults(handler=_cmd_list)

    report = sub.add_parser("report", help="re-render a finished run's report from its saved data",
                            description="Write report.md and report.html again from a run folder, without training.")
    report.add_argument("run_dir", type=Path, help="a run folder, e.g. reports/pointcloud_moons/20261122-101500-ab12cd")
    report.set_defaults(handler=_cmd_report)

    compare = sub.add_parser("compare", help="put several finished runs side by side in one report",
                             description="Write report.md and report.html comparing runs: the settings that differ, "
                             "their results, which findings each has, and their key figures.")
    compare.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="two or more run folders")
    compare.add_argument("--out", type=Path, default=None,
                         help="folder for the comparison (default: a new folder under reports/compare/)")
    compare.set_defaults(handler=_cmd_compare)
    _check_sampler_parser(sub)

    attach = sub.add_parser("attach", help="diagnose an unchanged training script: gendiag attach -- python X.py",
                            description="Run a Python script in this process with global hooks (no change to its "
                            "code), infer its task, and write a report when it ends. Its output and exit status are "
                            "its own.")
    attach.add_argument("--task", default=None, choices=TASKS, help="the task, where inference reads it wrong")
    attach.add_argument("--facts", type=Path, default=None, metavar="FILE.yaml",
                        help="facts for the probes (image_shape, schedule, modes, ...), as YAML")
    attach.add_argument("--out", type=Path, default=Path("reports/attach"),
                        help="root folder for the run (default: reports/attach; the run goes in ROOT/<script>/...)")
    attach.add_argument("command", nargs=argparse.REMAINDER, metavar="-- python SCRIPT.py [ARGS ...]")
    attach.set_defaults(handler=_cmd_attach)
    for sub_parser in (run, listing, report, compare, attach):
        sub_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                help="show Python tracebacks on errors")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from gendiag.config import load_case, load_resolved
    from gendiag.progress import training_progress
    from gendiag.runner import run_case
    from gendiag.threads import busy_note, default_threads

    if (args.case is None) == (args.resume is None):
        raise ValueError("run: give either a case file or --resume RUN_DIR (exactly one)")
    if args.resume is not None:
        if args.overrides or args.profile or args.seed is not None or args.out is not None or args.threads is not None:
            raise ValueError("run --resume: --set, --profile, --seed, --out and --threads do not apply "
                             "(a run resumes as it began)")
        case = load_resolved(args.resume)
    else:
        chosen = [] if args.threads is None else [f"run.threads={args.threads}"]
        case = load_case(_case_path(args.case), overrides=[*args.overrides, *chosen], profile=args.profile, seed=args.seed)
    nobody_chose = case.file.run.threads is None and "OMP_NUM_THREADS" not in os.environ
    note = busy_note(default_threads()) if nobody_chose else None
    steps = int(getattr(case.training, "steps", 0)) or None
    with training_progress(console, case.name, steps) as update:

        def progress(step: int, info: dict[str, float]) -> None:
            """The bar, after the note on a busy machine once training has begun (a bad case stays one line)."""
            nonlocal note
            if note is not None:
                errors.print(f"gendiag: note: {note}", markup=False, soft_wrap=True)
                note = None
            update(step, info)

        def announce(line: str) -> None:
            """A live finding, printed above the bar (rich keeps the bar whole)."""
            console.print(line, markup=False, highlight=False, soft_wrap=True)

        result = run_case(case, out_root=args.out, progress=progress, resume_dir=args.resume, stop_on=args.stop_on,
                          announce=announce)
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 reports the run; the others' findings are its
        return 0
    console.print(f"run folder: {result.run_dir}", soft_wrap=True)  # a path the user can copy whole
    if result.report.partial:
        console.print(f"[bold red]partial run[/]: {result.report.partial}")
    _print_results(result.results)
    _print_findings(result.report.findings)
    _print_known(result.report)
    if result.report.finish_seconds is not None:
        from gendiag.report.markdown import finish_cost

        console.print(f"report written in {finish_cost(result.report.finish_seconds)}", markup=False, soft_wrap=True,
                      highlight=False)
    return 0


def _case_path(given: Path) -> Path:
    """A case file as given, or, where no such file exists and a bare name was given, the shipped case of that
    name (so `gendiag run flattened_moons` works from any folder)."""
    shipped = SHIPPED_CASES / given.with_suffix(".yaml").name
    if given.exists() or given.parent != Path(".") or not shipped.is_file():
        return given
    return shipped


def _cmd_attach(args: argparse.Namespace) -> int:
    from gendiag.attach import run_attached
    from gendiag.attach.runner import split_command
    from gendiag.rundir import create_run_dir

    facts = {}
    if args.facts is not None:  # YAML is imported only for a facts file: it adds a tenth of a second to the run
        from gendiag.attach.facts_file import load_facts

        facts = load_facts(args.facts)
    _, target, _ = split_command(args.command)
    # This process is the script's from here on, and what is alive now (torch's, gendiag's and the standard
    # library's modules) lives until it exits: out of the collector's sight, gendiag's imports lengthen neither the
    # script's collections nor the final ones at exit (0.7 s of the healthy flow script's 300-step run, measured).
    gc.freeze()
    attached = run_attached(args.command, create_run_dir(args.out, Path(target).stem.replace(".", "_")),
                            task=args.task, facts=facts)
    codes = ", ".join(f"{f.severity} {f.code}" for f in attached.report.findings) or "none"
    sys.stdout.flush()  # the script's own output first
    errors.print(f"gendiag attach: task {attached.task}; report in {attached.run_dir / 'report.html'}; findings: "
                 f"{codes}", markup=False, soft_wrap=True)
    return attached.exit_code


def _cmd_list(args: argparse.Namespace) -> int:
    from gendiag.config import CaseError, read_yaml

    if not args.dir.is_dir():
        raise FileNotFoundError(f"{args.dir}: no such folder of case files")
    paths = sorted(args.dir.glob("*.yaml"))
    width = max((len(path.name) for path in paths), default=0)
    for path in paths:
        try:
            description = " ".join(str(read_yaml(path).get("description", "")).split())
        except CaseError as error:
            description = f"(unreadable: {error})"
        if args.verbose:
            console.print(path.name, style="bold", markup=False, highlight=False)
            console.print(description or "(no description)", markup=False, highlight=False)
            console.print()
            continue
        line = f"{path.name:<{width}}  {_first_sentence(description)}"
        console.print(line, markup=False, highlight=False, no_wrap=True, overflow="ellipsis", crop=True)
    return 0


def _first_sentence(text: str) -> str:
    """Up to the first full stop (or ! or ?) that ends a sentence: one followed by a space."""
    return re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]


def _cmd_report(args: argparse.Namespace) -> int:
    from gendiag.report import check_complete, load_run, write_reports

    report = load_run(args.run_dir)
    check_complete(report)
    write_reports(report)
    console.print(f"wrote {report.markdown_path} and {report.html_path}", soft_wrap=True)
    _print_findings(report.findings)
    _print_known(report)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from gendiag.compare import compare_runs

    comparison = compare_runs(args.run_dirs, out_dir=args.out)
    console.print(f"wrote {comparison.markdown_path} and {comparison.html_path}", soft_wrap=True)
    return 0


def _check_sampler_parser(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check-sampler", help="check a sampler's properties against targets with exact fields",
                           description="Import a sampler and check its properties (the state moves, time runs the "
                           "right way, samples follow the target, ...) against Gaussian mixtures whose velocity field "
                           "or noise prediction is exact; one line per property. Exit status 0: all hold; 1: some "
                           "fail; 2: the sampler cannot be imported or called as documented.")
    check.add_argument("sampler", metavar="FILE.py:NAME", help="the sampler, as path/to/file.py:NAME or "
                       "package.module:NAME")
    check.add_argument("--kind", choices=("flow", "ddpm", "ddim"), default="flow",
                       help="flow: sampler(velocity_fn, x0, steps); ddpm: sampler(eps_fn, x_T, betas, steps, "
                       "generator); ddim: sampler(eps_fn, x_T, betas, steps) (default: flow)")
    check.add_argument("--time-scale", type=_positive_scale, default=None, metavar="S",
                       help="diffusion: the sampler passes t = step·S/T (1 for t/T); default: the integer step")
    check.add_argument("--order", type=float, default=1.0, help="flow: the sampler's order (Euler 1, Heun 2)")
    check.add_argument("--dim", type=_positive, default=2, help="dimension of the targets (default: 2)")
    check.add_argument("--examples", type=_positive, default=5, help="generated targets per property (default: 5)")
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show Python tracebacks on errors")
    check.set_defaults(handler=_cmd_check_sampler)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _positive_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _cmd_check_sampler(args: argparse.Namespace) -> int:
    from gendiag.testing.command import run

    return run(args.sampler, args.kind, args.time_scale, args.order, args.dim, args.examples, args.debug,
               lambda line: console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True))


def _print_results(results: dict[str, object]) -> None:
    if not results:
        return
    table = Table(title="results")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)


def _print_findings(findings: list) -> None:
    if not findings:
        console.print("findings: none")
        return
    colour = {"critical": "red", "warning": "yellow", "info": "blue"}
    table = Table(title=f"findings ({len(findings)})")
    table.add_column("severity")
    table.add_column("code")
    table.add_column("title")
    for finding in findings:
        table.add_row(f"[{colour[finding.severity]}]{finding.severity}[/]", finding.code, finding.title)
    console.print(table)


def _print_known(report: "Report") -> None:
    """How early each critical finding was known ('target-explodes known at step 12 of 200 (6%)'), and what was
    announced during training but cleared before the end."""
    for finding in report.findings:
        if finding.severity == "critical" and finding.first_step is not None and report.steps:
            console.print(f"{finding.code} known at step {finding.first_step} of {report.steps} "
                          f"({finding.first_step / report.steps:.0%})", markup=False, highlight=False)
    for finding in report.cleared:
        console.print(f"cleared during training: {finding.severity} {finding.code}, held from step "
                      f"{finding.first_step} to {finding.last_step}", markup=False, highlight=False)


if __name__ == "__main__":
    sys.exit(main())

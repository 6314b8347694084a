"""`python -m benchmarks [--quick] [--cases] [--full] [--only NAME ...]`: runs the benchmarks/bench_*.py modules,
prints one table and writes benchmarks/RESULTS.md (machine, date, each figure's median over repetitions and its spread).

The default set is the speed modules, which fit 15 minutes on 2 cores: every module but those marked `CASES_ONLY`
(every case run end to end for its wall time and quality, compute-bound: `--cases` adds them) and `FULL_ONLY`
(multi-seed quality bars that take most of an hour on 2 cores: `--full` adds them); `--only` names modules
explicitly.

Each module's rows are also kept in benchmarks/results/NAME.json with the machine and date they were measured on;
RESULTS.md is rebuilt from all of them, so `--only NAME` refreshes one section and keeps the others as measured.

Each module exposes `run(quick: bool = False) -> list[dict]` with rows
{"benchmark", "figure", "median", "spread", "unit", "goal", "met", "note"}. Timings are ratios measured side by side
in one process (A, B, A, B ...), never absolute times compared across runs."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
INVOCATION = "last_invocation.json"
COLUMNS = ("benchmark", "figure", "median", "spread", "unit", "goal", "met", "note")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test (not for RESULTS.md)")
    parser.add_argument("--cases", action="store_true", help="also the CASES_ONLY modules (every case's wall time "
                        "and quality)")
    parser.add_argument("--full", action="store_true", help="also the FULL_ONLY modules (multi-seed quality bars)")
    parser.add_argument("--only", nargs="*", default=None, help="module names, e.g. bench_rasterizer")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="where to write the results")
    args = parser.parse_args(argv)
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown benchmark modules {unknown}; known: {names}")
        names = [n for n in names if n in args.only]
    else:
        left_out = [flag for flag, given in (("CASES_ONLY", args.cases), ("FULL_ONLY", args.full)) if not given]
        names = [n for n in names
                 if not any(getattr(importlib.import_module(f"benchmarks.{n}"), flag, False) for flag in left_out)]
    console = Console()
    started = time.perf_counter()
    rows: list[dict] = []
    failures: list[str] = []
    for name in names:
        console.print(f"[bold]{name}[/] ...")
        tick = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            produced = module.run(quick=args.quick)
        except Exception as error:  # one broken benchmark must not hide the others' figures
            failures.append(f"{name}: {type(error).__name__}: {error}")
            traceback.print_exc()
            continue
        for row in produced:
            missing = set(COLUMNS) - set(row)
            if missing:
                raise ValueError(f"benchmarks.{name}: a row lacks {sorted(missing)}: {row}")
        rows += produced
        seconds = time.perf_counter() - tick
        console.print(f"  done in {seconds:.0f} s")
        if not args.quick:
            RESULTS.mkdir(exist_ok=True)
            record = {"module": name, "measured": datetime.now().isoformat(timespec="minutes"),
                      "seconds": round(seconds, 1), "machine": _machine(), "rows": produced}
            (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    console.print(_table(rows))
    if not args.quick and not args.only and not failures:
        (RESULTS / INVOCATION).write_text(json.dumps(
            {"finished": datetime.now().isoformat(timespec="minutes"), "full": args.full, "cases": args.cases,
             "modules": names,
             "seconds": round(time.perf_counter() - started, 1), "machine": _machine()}, indent=1) + "\n")
    if failures:
        console.print("[red]failed:[/] " + "; ".join(failures))
    if not args.quick:
        args.out.write_text(_markdown(_records(), failures))
        console.print(f"wrote {args.out} (notes are there)")
    return 1 if failures else 0


def _machine() -> str:
    return (f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
            f"torch {torch.__version__} (threads {torch.get_num_threads()})")


def _records() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(RESULTS.glob("bench_*.json"))]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return str(value).replace("|", "\\|")


def _table(rows: list[dict]) -> Table:
    table = Table(title="benchmarks")
    shown = [c for c in COLUMNS if c != "note"]
    for column in shown:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_fmt(row[c]).replace("**", "") for c in shown])
    return table


def _invocation_line() -> str:
    """The one-command goal (issues 8 and 22: the default set in under 15 minutes), from the last whole run."""
    path = RESULTS / INVOCATION
    if not path.is_file():
        return "No whole run of `python -m benchmarks` is recorded yet (only `--only` runs)."
    last = json.loads(path.read_text())
    minutes = last["seconds"] / 60
    flags = [flag for flag in ("cases", "full") if last.get(flag)]
    if flags:
        verdict = f"the 15-minute goal is for the default set, without {' and '.join('--' + f for f in flags)}"
    else:
        verdict = "goal: under 15 minutes, " + ("met" if minutes < 15 else f"**missed** by {minutes - 15:.1f} minutes")
    which = (f"`python -m benchmarks {' '.join('--' + f for f in flags)}`" if flags
             else "`python -m benchmarks` (the default set)")
    return (f"The last whole run of {which}, finished {last['finished']} on {last['machine']}, took {minutes:.1f} "
            f"minutes for {', '.join(last['modules'])} ({verdict}).")


def _markdown(records: list[dict], failures: list[str]) -> str:
    total = sum(record["seconds"] for record in records)
    lines = [
        "# Benchmark results", "",
        f"Written by `python -m benchmarks` on {datetime.now().isoformat(timespec='minutes')}; the modules below took "
        f"{total / 60:.1f} minutes together.", "", _invocation_line(), "",
        "Medians over repetitions; the spread column says which spread (or the note does). Timings are ratios taken "
        "side by side in one process. `met` compares the figure with its goal; a miss is shown, not hidden.", "",
    ]
    for record in records:
        lines += [f"## {record['module']}", "",
                  f"Measured {record['measured']} in {record['seconds'] / 60:.1f} minutes on {record['machine']}.", "",
                  "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(_fmt(row[c]) for c in COLUMNS) + " |" for row in record["rows"]]
        lines.append("")
    if failures:
        lines += ["## Benchmarks that failed to run in the last invocation", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())

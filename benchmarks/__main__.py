"""`python -m benchmarks [--quick] [--only NAME ...]`: runs every benchmarks/bench_*.py module, prints one table
and writes benchmarks/RESULTS.md (machine, date, each figure's median over repetitions and its spread).

Each module exposes `run(quick: bool = False) -> list[dict]` with rows
{"benchmark", "figure", "median", "spread", "unit", "goal", "met", "note"}. Timings are ratios measured side by side
in one process (A, B, A, B ...), never absolute times compared across runs."""

from __future__ import annotations

import argparse
import importlib
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
COLUMNS = ("benchmark", "figure", "median", "spread", "unit", "goal", "met", "note")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test (not for RESULTS.md)")
    parser.add_argument("--only", nargs="*", default=None, help="module names, e.g. bench_rasterizer")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="where to write the results")
    args = parser.parse_args(argv)
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown benchmark modules {unknown}; known: {names}")
        names = [n for n in names if n in args.only]
    console = Console()
    rows: list[dict] = []
    failures: list[str] = []
    started = time.perf_counter()
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
            rows.append(row)
        console.print(f"  done in {time.perf_counter() - tick:.0f} s")
    total = time.perf_counter() - started
    console.print(_table(rows))
    if failures:
        console.print("[red]failed:[/] " + "; ".join(failures))
    if not args.quick:
        args.out.write_text(_markdown(rows, failures, total))
        console.print(f"wrote {args.out}")
    return 1 if failures else 0


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
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_fmt(row[c]).replace("**", "") for c in COLUMNS])
    return table


def _markdown(rows: list[dict], failures: list[str], seconds: float) -> str:
    lines = [
        "# Benchmark results", "",
        f"Written by `python -m benchmarks` on {datetime.now().isoformat(timespec='minutes')}, in {seconds / 60:.1f} minutes.",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch.__version__} (threads {torch.get_num_threads()}).", "",
        "Medians over repetitions; the spread column says which spread in the note. Timings are ratios taken side by "
        "side in one process. `met` compares the figure with its goal; a miss is shown, not hidden.", "",
        "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in COLUMNS) + " |" for row in rows]
    if failures:
        lines += ["", "## Benchmarks that failed to run", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())

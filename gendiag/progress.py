"""Training progress for `gendiag run`: a rich bar on a terminal; anywhere else (a cluster job, `nohup`, CI) one
plain line every few seconds, since a bar redrawn in place never reaches a log file."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column

ProgressFn = Callable[[int, dict[str, float]], None]
PLAIN_EVERY_S = 10.0  # seconds between plain progress lines
CLOCK_WIDTH = 7  # "0:00:00", the time-left column


def info_text(info: dict[str, float]) -> str:
    """The step's figures as `name value` pairs (a GAN's `loss_d` and `loss_g` each under its own name)."""
    return "  ".join(f"{name} {value:.4g}" for name, value in info.items())


@contextmanager
def training_progress(console: Console, name: str, total: int | None,
                      every_s: float = PLAIN_EVERY_S) -> Iterator[ProgressFn]:
    """A `progress(step, info)` callback for the run of case `name` over `total` steps (None: unknown): the bar
    when `console` is a terminal, plain lines every `every_s` seconds otherwise."""
    if console.is_terminal:
        with _bar(console, name, total) as bar:
            task = bar.add_task("train", total=total, info="")
            yield lambda step, info: bar.update(task, completed=step, info=info_text(info))
        return
    lines = PlainLines(console, name, total, every_s)
    try:
        yield lines.update
    finally:
        lines.close()


def _bar(console: Console, name: str, total: int | None) -> Progress:
    """The bar laid out for the console's width: the step count `N/TOTAL` and the time left keep their width,
    the case name and the bar give way when the line is short, and the step's figures come last, cut with an
    ellipsis if they do not fit."""
    count_width = 2 * len(str(total)) + 1 if total is not None else 12
    separators = 4
    room = console.width - count_width - CLOCK_WIDTH - separators
    name_width = max(1, min(len(name), 24, room // 3))
    rest = max(2, room - name_width)
    bar_width = max(1, min(40, rest - 36))  # the figures first get room for two losses
    info_width = max(1, rest - bar_width)
    return Progress(
        TextColumn(f"[bold]{name}[/]", table_column=Column(width=name_width, no_wrap=True, overflow="ellipsis")),
        BarColumn(bar_width=bar_width),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TimeRemainingColumn(table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[info]}", table_column=Column(width=info_width, no_wrap=True, overflow="ellipsis")),
        console=console, transient=False,
    )


class PlainLines:
    """Progress as plain lines: the first step, then one line every `every_s` seconds, and the last step (or the
    last step reached, when the run stops early); each says step/total, steps per second, the time left and the
    step's figures."""

    def __init__(self, console: Console, name: str, total: int | None, every_s: float = PLAIN_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.name, self.total, self.every_s, self.clock = console, name, total, every_s, clock
        self._first: tuple[float, int] | None = None  # (time, step) of the first update: the rate counts from it
        self._printed_at: float | None = None
        self._pending: tuple[float, int, dict[str, float]] | None = None

    def update(self, step: int, info: dict[str, float]) -> None:
        now = self.clock()
        if self._first is None:
            self._first = (now, step)
        last = self.total is not None and step >= self.total
        if self._printed_at is None or last or now - self._printed_at >= self.every_s:
            self._print(now, step, info)
        else:
            self._pending = (now, step, dict(info))

    def close(self) -> None:
        """Print the last step reached if its line is still owed."""
        if self._pending is not None:
            self._print(*self._pending)

    def _print(self, now: float, step: int, info: dict[str, float]) -> None:
        parts = [self.name, f"step {step}/{self.total if self.total is not None else '?'}"]
        first_time, first_step = self._first if self._first is not None else (now, step)
        if now > first_time and step > first_step:
            rate = (step - first_step) / (now - first_time)
            parts.append(f"{rate:.3g} steps/s")
            if self.total is not None:
                parts.append(f"ETA {timedelta(seconds=round(max(0, self.total - step) / rate))}")
        if info:
            parts.append(info_text(info))
        self.console.print("  ".join(parts), markup=False, highlight=False, soft_wrap=True)
        self._printed_at, self._pending = now, None

"""Live diagnosis: the probes' rules asked while training runs, on a schedule that keeps them nearly free; each
warning or critical finding announced once when it first holds (a console line, a TensorBoard text entry, a line
of `findings_live.jsonl`) and again when it stops holding; the step each finding first held, for the report.

The rules are the probes' own `findings(ctx)`, the same ones `Monitor.finish` asks: a rule that lacks evidence
stays quiet here as it does at the end. This module keeps the schedule and the record; the Monitor calls the
probes (through its failure guard) and hands the findings over.

Findings about the trained model and its samples (the "model" and "samples" stages of `gendiag.findings.STAGES`:
`field-ignores-t`, `posterior-collapse`, `mode-collapse`, ...) judge an outcome of training: early in a healthy
run the network does ignore t, because it has not learned it yet. Live checks record them quietly (no
announcement, no stop, never "cleared"); their `first_step` is the check from which they held without a break
until the end."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from gendiag.findings import SEVERITY_RANK, STAGES, Finding
from gendiag.sinks import Sink

JOURNAL = "findings_live.jsonl"
CHECK_EVERY = 25  # steps between live checks, by default
CHECK_SECONDS = 2.0  # and at least this much wall time between two of them, by default
CHECK_SHARE = 0.02  # and at most this share of the wall time spent in checks: a check that took 0.4 s waits 20 s
ANNOUNCED = ("critical", "warning")
STOP_ON = (None, "warning", "critical")
OUTCOMES = frozenset(STAGES["model"] + STAGES["samples"])  # judged on the trained model: recorded, not announced
# Evidence keys that tell apart two findings of one code from one probe (one per network, one per end of t).
_SUBJECT_KEYS = ("network", "model", "end")

Announce = Callable[[str], None]
Key = tuple[str, str, str]


def finding_key(finding: Finding) -> Key:
    """What makes a finding the same one from check to check: its probe, its code and its subject (the network
    or the end of t it is about), not its numbers or its wording, which change as evidence accumulates."""
    subject = next((str(finding.evidence[key]) for key in _SUBJECT_KEYS if key in finding.evidence), "")
    return finding.probe, finding.code, subject


def check_schedule(every: int | None, seconds: float) -> None:
    """A ValueError, in one line, for a live-check schedule that cannot be kept (None: no live checks)."""
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ValueError(f"Monitor: check_every must be an integer >= 1 (or None for no live checks), got {every!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ValueError(f"Monitor: check_seconds must be a number >= 0, got {seconds!r}")


def check_stop_on(stop_on: str | None) -> str | None:
    """`stop_on` as given, or a ValueError naming the allowed values."""
    if stop_on not in STOP_ON:
        raise ValueError(f"Monitor: stop_on must be one of None, 'warning' or 'critical', got {stop_on!r}")
    return stop_on


def console_line(line: str) -> None:
    """The default announcement: one line on stderr, through tqdm's `write` where the loop uses tqdm (it keeps
    the bars whole)."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None and hasattr(tqdm, "tqdm"):
        tqdm.tqdm.write(line, file=sys.stderr)
        return
    print(line, file=sys.stderr, flush=True)


@dataclass
class Seen:
    """One finding's history over the live checks."""

    finding: Finding  # as at the last check where it held
    first_step: int
    last_step: int  # the last check where it held
    holding: bool = True
    announced: bool = False


class LiveChecks:
    """When to check, and what each check found.

    A check is due once at least `every` steps and `seconds` of wall time have passed since the last one (the
    first after `every` steps), and long enough after it that checks take at most `CHECK_SHARE` of the wall time
    (a probe whose rules run the network, such as the velocity field's, costs tenths of a second a check).
    `record(step, findings)` takes a check's findings, announces what appeared or cleared, and keeps each finding's
    first and last step; `stamp` puts those steps on the run's final findings."""

    def __init__(self, run_dir: Path, sinks: Sequence[Sink], announce: Announce | None = None,
                 every: int = CHECK_EVERY, seconds: float = CHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_schedule(every, seconds)
        self.path = Path(run_dir) / JOURNAL
        self.sinks, self.announce = sinks, announce or console_line
        self.every, self.seconds, self.clock = every, seconds, clock
        self.seen: dict[Key, Seen] = {}
        self.checks = 0
        self._last_step: int | None = None
        self._last_time = clock()
        self._wait = 0.0  # the first check waits for `every` steps only: on a fast loop, a cause is named at step 25

    def due(self, step: int) -> bool:
        since = step - (self._last_step if self._last_step is not None else 0)
        return since >= self.every and self.clock() - self._last_time >= self._wait

    def record(self, step: int, findings: list[Finding], spent: float = 0.0) -> None:
        """The findings of the check at `step`, which took `spent` seconds: announce each warning or critical one
        the first time it holds, each announced one that stops holding ("cleared") and each cleared one that holds
        again ("returned")."""
        self.checks += 1
        self._last_step, self._last_time = step, self.clock()
        self._wait = max(self.seconds, spent / CHECK_SHARE)
        now = {finding_key(finding): finding for finding in findings}
        for key, finding in now.items():
            seen = self.seen.get(key)
            if seen is None or (finding.code in OUTCOMES and not seen.holding):  # an outcome: a new unbroken spell
                seen = self.seen[key] = Seen(finding, first_step=step, last_step=step)
            returned = seen.announced and not seen.holding
            seen.finding, seen.last_step, seen.holding = finding, step, True
            if finding.code in OUTCOMES:
                continue
            if returned or (not seen.announced and finding.severity in ANNOUNCED):
                seen.announced = True
                self._say(step, "returned" if returned else "appeared", finding, seen)
        for key, seen in self.seen.items():
            if seen.holding and key not in now:
                seen.holding = False
                if seen.announced:
                    self._say(step, "cleared", seen.finding, seen)

    def holding(self) -> list[Finding]:
        """The findings that held at the last check."""
        return [seen.finding for seen in self.seen.values() if seen.holding]

    def stamp(self, final: list[Finding], last_step: int, gone: Callable[[Finding], bool]) -> list[Finding]:
        """Put `first_step` on each of the run's final findings (the last step for one no check saw; for an outcome,
        the check from which it held without a break, else the last step) and return the
        announced findings that cleared before the end, each with its `first_step` and `last_step`, leaving out
        those for which `gone(finding)` is true (their probe was switched off: unknown, not cleared)."""
        keys = set()
        for finding in final:
            key = finding_key(finding)
            keys.add(key)
            seen = self.seen.get(key)
            if seen is not None and (seen.holding or finding.code not in OUTCOMES):
                finding.first_step = seen.first_step
            elif finding.first_step is None:  # a probe-failed finding keeps the step its probe failed at
                finding.first_step = last_step
            finding.last_step = None
        cleared = []
        for key, seen in self.seen.items():
            if key in keys or not seen.announced or gone(seen.finding):
                continue
            if seen.holding:  # held at the last check but not at the end
                seen.holding = False
                self._say(last_step, "cleared", seen.finding, seen)
            seen.finding.first_step, seen.finding.last_step = seen.first_step, seen.last_step
            cleared.append(seen.finding)
        return cleared

    def _say(self, step: int, event: str, finding: Finding, seen: Seen) -> None:
        """One announcement: the console line, a TensorBoard text entry, a line of findings_live.jsonl."""
        if event != "cleared":
            again = f" (again; first seen at step {seen.first_step})" if event == "returned" else ""
            line = f"step {step}  {finding.severity.upper()} {finding.code}: {finding.title}{again}"
        else:
            line = (f"step {step}  cleared {finding.code}: {finding.title} (held from step {seen.first_step} "
                    f"to {seen.last_step})")
        entry = {"step": step, "event": event, "severity": finding.severity, "code": finding.code,
                 "probe": finding.probe, "title": finding.title, "message": finding.message,
                 "first_step": seen.first_step, "last_step": seen.last_step if event == "cleared" else None,
                 "time": datetime.now().isoformat(timespec="seconds")}
        append_line(self.path, entry)
        for sink in self.sinks:
            sink.text("findings_live", line, step)
        self.announce(line)


def append_line(path: Path, entry: dict[str, Any]) -> None:
    """Append one JSON line in a single write to a file opened for appending, with SIGTERM and SIGINT held until
    the write returns: a reader (`tail -f`) or a kill mid-run never sees half a line."""
    data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    with kills_held():
        handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(handle, data)
        finally:
            os.close(handle)
    if written != len(data):
        raise OSError(f"{path}: wrote {written} of {len(data)} bytes of a findings line (disk full?)")


_KILLS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def kills_held() -> Iterator[None]:
    """SIGTERM and SIGINT that arrive inside the block take effect when it ends. Left to its default action, a
    signal kills the process inside the write, and Linux cuts the write short at a page boundary, whichever thread
    the signal reached. In the main thread a Python handler holds each signal and raises it again once the previous
    handlers are back; in another thread (where `signal.signal` cannot be called) they are only blocked in that
    thread, so one sent to the process may still reach another thread and cut the line."""
    if threading.current_thread() is not threading.main_thread():
        if hasattr(signal, "pthread_sigmask"):
            previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _KILLS)
            try:
                yield
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        else:
            yield
        return
    held: list[int] = []
    previous = {number: signal.getsignal(number) for number in _KILLS}
    taken = [number for number, action in previous.items() if action is not None]  # None: set outside Python
    for number in taken:
        signal.signal(number, lambda received, frame: held.append(received))
    try:
        yield
    finally:
        for number in taken:
            signal.signal(number, previous[number])
        for number in held:
            signal.raise_signal(number)


def stops(finding: Finding, stop_on: str | None) -> bool:
    """Whether `finding` is severe enough to stop a run that stops on `stop_on` (an outcome never stops one)."""
    return (stop_on is not None and finding.code not in OUTCOMES
            and SEVERITY_RANK[finding.severity] <= SEVERITY_RANK[stop_on])


def known_at(finding: Finding, steps: int | None) -> str:
    """'first seen at step N of M (x%)', with the cleared step where there is one; '' without a first step."""
    if finding.first_step is None:
        return ""
    of = f" of {steps}" if steps else ""
    share = f" ({finding.first_step / steps:.0%})" if steps else ""
    cleared = f", cleared after step {finding.last_step}" if finding.last_step is not None else ""
    return f"first seen at step {finding.first_step}{of}{share}{cleared}"

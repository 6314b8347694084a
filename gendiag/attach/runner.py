"""Run a user's script in this process under the global hooks, as `python -m cProfile script.py` does: `sys.argv`
is the script and its arguments, `sys.path[0]` its folder, and it runs as `__main__`. Its output, exit status and
files are its own; the report is written when it ends, however it ends (an exception, `sys.exit`, Ctrl-C,
SIGTERM)."""

from __future__ import annotations

import os
import runpy
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from gendiag.attach.hooks import installed
from gendiag.attach.session import Session
from gendiag.report import Report


class Terminated(BaseException):
    """SIGTERM arrived while the script ran (the script had no handler of its own)."""


@dataclass
class Attached:
    """What one attached run left: the script's exit status, the report, and the task it was diagnosed as."""

    exit_code: int
    report: Report
    run_dir: Path
    task: str


def split_command(command: list[str]) -> tuple[str, str, list[str]]:
    """("script", path, args) or ("module", name, args) from `python script.py args`, `python -m module args` or
    `script.py args`; anything else is a ValueError."""
    words = list(command)
    if words and words[0] == "--":
        words = words[1:]
    if words and Path(words[0]).name.startswith("python") and not words[0].endswith(".py"):
        words = words[1:]
    if not words:
        raise ValueError("attach: no script given; expected `gendiag attach -- python SCRIPT.py [ARGS ...]`")
    if words[0] == "-m":
        if len(words) < 2:
            raise ValueError("attach: `-m` needs a module name, as in `python -m package.module`")
        return "module", words[1], words[2:]
    if words[0].startswith("-"):
        raise ValueError(f"attach: the Python option {words[0]!r} is not supported; give `python SCRIPT.py [ARGS]` "
                         "or `python -m MODULE [ARGS]`")
    path = Path(words[0])
    if not path.is_file():
        raise FileNotFoundError(f"attach: no script {words[0]!r} (from {os.getcwd()})")
    return "script", str(path), words[1:]


def run_attached(command: list[str], run_dir: Path, task: str | None = None,
                 facts: dict[str, Any] | None = None) -> Attached:
    """Run the command's script under the hooks, then write the report into `run_dir`."""
    kind, target, arguments = split_command(command)
    run_dir = Path(run_dir).resolve()  # the script may change the working folder
    session = Session(run_dir, task=task, facts=facts)
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv[:] = [target, *arguments]
    if kind == "script":
        sys.path.insert(0, str(Path(target).resolve().parent))
    previous_term = signal.getsignal(signal.SIGTERM)
    own_term = previous_term in (signal.SIG_DFL, None)
    if own_term:
        signal.signal(signal.SIGTERM, _raise_terminated)
    exit_code, partial = 0, None
    try:
        with installed(session):
            if kind == "script":
                runpy.run_path(target, run_name="__main__")
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        exit_code = _exit_status(stop.code)
        if exit_code:
            partial = f"the script exited with status {exit_code}"
    except KeyboardInterrupt as error:
        _print_script_traceback(error, target)
        exit_code, partial = 130, "interrupted by Ctrl-C (KeyboardInterrupt)"
    except Terminated:
        exit_code, partial = 143, "stopped by SIGTERM"
    except Exception as error:  # the script's own error: shown as Python shows it, then the report
        _print_script_traceback(error, target)
        exit_code, partial = 1, f"the script raised {type(error).__name__}: {error}"
    finally:
        sys.argv[:], sys.path[:] = saved_argv, saved_path
        if own_term:
            signal.signal(signal.SIGTERM, previous_term)
    shown = " ".join(["python", *(["-m"] if kind == "module" else []), target, *arguments])
    header = f"Script: `{shown}`, exit status {exit_code}."
    report = session.finish(partial=partial, header=header)
    return Attached(exit_code, report, run_dir, session.monitor.ctx.task)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _exit_status(code: Any) -> int:
    """The status Python exits with for `sys.exit(code)` (a message is printed to stderr and gives 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_script_traceback(error: BaseException, target: str) -> None:
    """The traceback as a bare `python script.py` prints it: from the script's own first frame on."""
    tb: TracebackType | None = error.__traceback__
    script = str(Path(target).resolve())
    while tb is not None and str(Path(tb.tb_frame.f_code.co_filename).resolve()) != script:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__, file=sys.stderr)

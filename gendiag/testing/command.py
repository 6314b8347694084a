"""`gendiag check-sampler FILE.py:NAME --kind flow|ddpm|ddim`: import the user's sampler, check every property of its
kind, print one line per property. Exit status 0 when all hold, 1 when some fail, 2 for bad input (a path or name
that does not exist, a sampler that cannot be called as documented, raises, or returns the wrong shape)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from gendiag.testing.calls import SIGNATURES, SamplerContractError
from gendiag.testing.runner import check_sampler


def load_sampler(spec: str) -> Callable[..., Any]:
    """The object named by "path/to/file.py:NAME" or "package.module:NAME" (NAME may be dotted)."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise SamplerContractError(f"{spec}: expected FILE.py:NAME or package.module:NAME")
    module = _import(where, spec)
    value: Any = module
    for part in name.split("."):
        if not hasattr(value, part):
            raise SamplerContractError(f"{spec}: {where} has no attribute {name!r}")
        value = getattr(value, part)
    return value


def _import(where: str, spec: str) -> Any:
    path = Path(where)
    try:
        if where.endswith(".py") or path.is_file():
            if not path.is_file():
                raise SamplerContractError(f"{spec}: no such file {where}")
            name = f"gendiag_checked_{abs(hash(str(path.resolve())))}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise SamplerContractError(f"{spec}: {where} cannot be imported as a Python file")
            module = importlib.util.module_from_spec(module_spec)
            sys.path.insert(0, str(path.resolve().parent))
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
            return module
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(where)
    except SamplerContractError:
        raise
    except Exception as error:  # the user's module: a syntax error or a failed import is bad input, one line
        message = " ".join(str(error).split())
        raise SamplerContractError(f"{spec}: importing {where} raised {type(error).__name__}: {message}") from None


def run(spec: str, kind: str, time_scale: float | None, order: float, dim: int, examples: int, debug: bool,
        say: Callable[[str], None]) -> int:
    """Checks the sampler named by `spec`, printing through `say`; returns the exit status (`debug`: bad input
    raises, with its traceback)."""
    started = time.perf_counter()
    try:
        verdicts = check_sampler(load_sampler(spec), kind, label=spec, time_scale=time_scale, order=order, dims=dim,
                                 examples=examples)
    except SamplerContractError as error:
        if debug:
            raise
        shown = str(error) if SIGNATURES[kind] in str(error) else f"{error} (a {kind} sampler is {SIGNATURES[kind]})"
        say(f"gendiag check-sampler: {shown}")
        return 2
    for verdict in verdicts:
        say(verdict.line())
    held = sum(verdict.passed for verdict in verdicts)
    say(f"{spec} ({kind}): {held} of {len(verdicts)} properties hold, {examples} examples each on {dim}-D targets, "
        f"in {time.perf_counter() - started:.1f} s")
    return 0 if held == len(verdicts) else 1

"""Runs every property of a sampler's kind as a hypothesis property over generated examples: derandomized (the
same examples on every run), a bounded number of examples, no example database, and a failure shrunk to its
smallest example before its message is kept."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, Verbosity, given, settings

from gendiag.testing.calls import Sampler, SamplerContractError
from gendiag.testing.properties import PROPERTIES, Example, PropertyFailure, error_order
from gendiag.testing.strategies import examples as example_strategy

EXAMPLES = 5


@dataclass(frozen=True)
class Verdict:
    """One property's outcome: its name, whether it held on every example, and the failure message if not."""

    name: str
    passed: bool
    message: str = ""

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}" + ("" if self.passed else f": {self.message}")


def check_sampler(fn: Callable[..., Any], kind: str = "flow", *, label: str | None = None,
                  time_scale: float | None = None, order: float = 1.0, dims: int | tuple[int, int] = (1, 4),
                  examples: int = EXAMPLES, only: tuple[str, ...] | None = None) -> list[Verdict]:
    """Every property of `kind` ("flow", "ddpm" or "ddim") for the sampler `fn`, each over `examples` generated
    targets of dimension `dims` (one, or a (low, high) range). `order`: the flow sampler's expected order of
    convergence; `time_scale`: diffusion, the value t takes for step T (default T: integer steps); `only`: names of
    the properties to run (all when None). Raises SamplerContractError when the sampler cannot be called as its
    kind's signature says, raises, or returns the wrong shape."""
    sampler = Sampler(fn, kind, label or getattr(fn, "__qualname__", repr(fn)), time_scale)
    verdicts = []
    for name, prop, single in PROPERTIES[kind]:
        if only is not None and name not in only:
            continue
        if prop is error_order:
            prop = functools.partial(error_order, order=order)
        verdicts.append(_hold(name, functools.partial(prop, sampler), example_strategy(kind, single, dims), examples))
    return verdicts


def _hold(name: str, prop: Callable[[Example], None], strategy: Any, examples: int) -> Verdict:
    """Runs one property under hypothesis; a failure comes back shrunk, as a Verdict with its message."""

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
              phases=(Phase.explicit, Phase.generate, Phase.shrink))
    @given(strategy)
    def holds(example: Example) -> None:
        prop(example)

    try:
        holds()
    except PropertyFailure as failure:
        return Verdict(name, False, str(failure))
    except BaseExceptionGroup as group:  # hypothesis's FlakyFailure: the sampler failed, then passed, on one example
        inner = _first(group)
        if isinstance(inner, SamplerContractError):
            raise inner from None
        return Verdict(name, False, f"{inner} (not reproducible: the same example passed when run again)")
    return Verdict(name, True)


def _first(group: BaseExceptionGroup) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error)
        if isinstance(error, (PropertyFailure, SamplerContractError)):
            return error
    return group.exceptions[0]


def raise_on_failure(verdicts: list[Verdict]) -> None:
    """AssertionError listing every property that failed, one per line."""
    failed = [verdict.line() for verdict in verdicts if not verdict.passed]
    if failed:
        raise AssertionError("\n".join(failed))


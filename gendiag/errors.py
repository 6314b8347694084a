"""Exceptions that end a run early or refuse a case; kept free of heavy imports so the CLI can name them cheaply."""

from __future__ import annotations


class RunInterrupted(Exception):
    """SIGTERM or SIGINT arrived; raised at the next step boundary so the run stops in a consistent state."""

    def __init__(self, signal_name: str, step: int | None) -> None:
        super().__init__(f"stopped by {signal_name} at step {step}")
        self.signal_name = signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130


class StoppedOnFinding(Exception):
    """A live check found a finding as severe as `gendiag run --stop-on` asks to stop on; raised at the step
    boundary, and the run ends there with its report (exit status 0: the run did what it was asked)."""

    def __init__(self, severity: str, code: str, step: int, stop_on: str) -> None:
        super().__init__(f"stopped on {severity} finding {code} at step {step} (--stop-on {stop_on})")
        self.code, self.step = code, step


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite and the case says to stop (run.on_nonfinite: stop)."""


class CaseError(ValueError):
    """A case file (or an override) that cannot be run; the message is one line meant for the user."""

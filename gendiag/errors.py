"""Exceptions that end a run early or refuse a case; kept free of heavy imports so the CLI can name them cheaply."""

from __future__ import annotations


class RunInterrupted(Exception):
    """SIGTERM or SIGINT arrived; raised at the next step boundary so the run stops in a consistent state."""

    def __init__(self, signal_name: str, step: int | None) -> None:
        super().__init__(f"stopped by {signal_name} at step {step}")
        self.signal_name = signal_name
        self.exit_code = 143 if signal_name == "SIGTERM" else 130


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite and the case says to stop (run.on_nonfinite: stop)."""


class CaseError(ValueError):
    """A case file (or an override) that cannot be run; the message is one line meant for the user."""

"""Sinks: where the Monitor writes what it logs. Each one receives every scalar, figure and text of the run.

The Monitor writes to TensorBoard (`tb/`) and to the scalar table (`metrics.csv`) by default; pass
`Monitor(..., sinks=[MySink()])` to add your own, e.g. a line per scalar in a log or another tracker."""

from __future__ import annotations


class Sink:
    """A destination for a run's logs. Override `scalar` (required) and whichever of `image`, `text` and `close`
    your destination takes; the others do nothing by default."""

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One number under `tag` (e.g. "loss/train") at a global step."""
        raise NotImplementedError(f"{type(self).__name__}.scalar: a sink must take scalars")

    def image(self, tag: str, png: bytes, step: int) -> None:
        """A figure, encoded as PNG (what `Monitor.save_figure` writes under figures/)."""

    def text(self, tag: str, text: str, step: int) -> None:
        """A block of Markdown text (the findings at the end of the run)."""

    def close(self) -> None:
        """The run is over (or abandoned): write what is held back and release files."""

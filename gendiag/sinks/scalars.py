"""The run's metrics as one long table (step, tag, value), saved as CSV through pandas."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gendiag.io import atomic_write_text
from gendiag.sinks import Sink

if TYPE_CHECKING:
    import pandas as pd


class ScalarTable(Sink):
    """Collects scalars in memory (cheap appends) and writes them as `metrics.csv`. pandas is imported when a
    table is read or written, not with gendiag."""

    columns = ("step", "tag", "value")

    def __init__(self) -> None:
        self._rows: list[tuple[int, str, float]] = []

    def add(self, step: int, tag: str, value: float) -> None:
        self._rows.append((int(step), tag, float(value)))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.add(step, tag, value)

    def rows(self) -> list[tuple[int, str, float]]:
        """A copy of every row, for checkpoints."""
        return list(self._rows)

    def extend(self, rows: list[tuple[int, str, float]]) -> None:
        """Rows recorded before a resume."""
        self._rows.extend((int(step), str(tag), float(value)) for step, tag, value in rows)

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(self._rows, columns=list(self.columns))

    def series(self, tag: str) -> "pd.Series":
        """One tag's values indexed by step."""
        import pandas as pd

        frame = self.frame()
        chosen = frame[frame["tag"] == tag]
        return pd.Series(chosen["value"].to_numpy(), index=chosen["step"].to_numpy(), name=tag)

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.frame().to_csv(index=False))

    @classmethod
    def load(cls, path: Path) -> "pd.DataFrame":
        """Read a saved metrics table back, checking its columns."""
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not a readable metrics table ({error})") from error
        missing = set(cls.columns) - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: metrics table lacks columns {sorted(missing)}; expected {list(cls.columns)}")
        return frame

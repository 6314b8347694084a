"""Figures drawn to PNG: in this process by default, or, where `GENDIAG_DRAW_IN_CHILDREN=1` asks for it on Linux,
beside the Monitor's own work in forked child processes (a copy of the Monitor's memory, so nothing is pickled or
imported again) while the Monitor goes on with the next probe; `wait` collects the PNGs.

Children are opt-in because a child forked while another thread of the training process holds a lock (torch's
intra-op thread pool with more than one thread) can wait on that lock for ever: seen in CI with two torch threads.
With one torch thread (`OMP_NUM_THREADS=1`, `gendiag run --threads 1`) they are safe and cut the report's wall time.

A child writes the PNG file itself and reports only its exit status; where one fails, the figure is drawn in this
process instead, so a figure is never lost to the mechanism. A child never touches the user's state: it draws one figure, writes one file and leaves with
`os._exit`, skipping every exit handler (the TensorBoard writer, the user's)."""

from __future__ import annotations

import io
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from gendiag.figures import DPI
from gendiag.io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IN_CHILDREN_VARIABLE = "GENDIAG_DRAW_IN_CHILDREN"


def png_bytes(figure: "Figure") -> bytes:
    """The figure as PNG bytes at the report's resolution (fast zlib level: the PNGs are small either way)."""
    png = io.BytesIO()
    figure.savefig(png, dpi=DPI, format="png", pil_kwargs={"compress_level": 1})
    return png.getvalue()


def can_fork() -> bool:
    """Whether figures are drawn in child processes here: asked for by GENDIAG_DRAW_IN_CHILDREN=1, on Linux with
    more than one core."""
    return (os.environ.get(IN_CHILDREN_VARIABLE, "") == "1" and sys.platform.startswith("linux")
            and hasattr(os, "fork") and (os.cpu_count() or 1) > 1)


@dataclass
class _Pending:
    pid: int
    make: Callable[[], "Figure"]
    path: Path
    done: Callable[[bytes], None]


class Drawer:
    """Draws figures to PNG files, in at most `workers` child processes at a time (or in this process)."""

    def __init__(self, workers: int | None = None, fork: bool | None = None) -> None:
        self.fork = can_fork() if fork is None else fork
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.pending: list[_Pending] = []
        self.failures: list[tuple[Path, Exception]] = []  # figures that could not be drawn in the child nor here

    def draw(self, make: Callable[[], "Figure"], path: Path, done: Callable[[bytes], None]) -> None:
        """Write the figure `make()` returns to `path` as PNG; `done(png)` is called once it is written (here, at
        once, when drawing in this process; by `wait` otherwise). `make` runs in the child: it may build the figure
        there or return one already built."""
        if not self.fork:
            done(_write(make(), path))
            return
        while len(self.pending) >= self.workers:
            self._collect(self.pending.pop(0))
        _warm()
        with warnings.catch_warnings():  # Python 3.12+ warns on fork in a process with threads: the child only draws
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: draw, write, leave without running anything else of the parent's
            status = 1
            try:
                _write(make(), path)
                status = 0
            except BaseException:  # noqa: B036  the parent draws the figure again and raises where it fails
                pass
            finally:
                os._exit(status)
        self.pending.append(_Pending(pid, make, path, done))

    def wait(self) -> None:
        """Collect every figure still being drawn, in the order they were asked for; one that fails both in its
        child and here is added to `failures`."""
        while self.pending:
            self._collect(self.pending.pop(0))

    def _collect(self, pending: _Pending) -> None:
        _, status = os.waitpid(pending.pid, 0)
        if os.waitstatus_to_exitcode(status) == 0 and pending.path.is_file():
            pending.done(pending.path.read_bytes())
            return
        try:
            png = _write(pending.make(), pending.path)
        except Exception as error:  # the figure's own code failed: kept for the Monitor to report, not raised
            self.failures.append((pending.path, error))  # inside whichever probe happens to be drawing now
            return
        pending.done(png)


_WARM: list[bool] = []


def _warm() -> None:
    """Once per process, before the first fork: import the Agg canvas, load the default font and build the mathtext
    parser (log-axis tick labels are mathtext), which every child would otherwise each do again."""
    if _WARM:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.text(0.5, 0.5, "$10^{1}$ x")
    figure.canvas.draw()
    _WARM.append(True)


def _write(figure: "Figure", path: Path) -> bytes:
    png = png_bytes(figure)
    atomic_write_bytes(path, png)
    return png

"""TensorBoard event files under the run's `tb/` folder, through torch's SummaryWriter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.tensorboard import SummaryWriter

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class TensorBoardSink:
    """A thin wrapper that fixes the folder and keeps the tag namespaces in one place."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=30)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._writer.add_scalar(tag, value, step)

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        self._writer.add_histogram(tag, values.detach().float().cpu(), step)

    def figure(self, tag: str, figure: "Figure", step: int) -> None:
        self._writer.add_figure(f"figures/{tag}", figure, step, close=False)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self._writer.add_text(tag, text, step)

    def layout(self, layout: dict[str, dict[str, list[Any]]]) -> None:
        """Custom-scalars layout: {category: {chart title: ["Multiline", [tag regexes]]}}."""
        self._writer.add_custom_scalars(layout)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's settings and headline figures in the HParams dashboard (written into this run's folder)."""
        plain = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
        self._writer.add_hparams(plain, metrics, run_name=".")

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

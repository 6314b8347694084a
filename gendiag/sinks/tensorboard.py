"""TensorBoard event files under the run's `tb/` folder, written by gendiag's own batched event writer
(`gendiag.sinks.events`); the summaries other than scalars are TensorBoard's protobufs (a histogram's buckets counted
here by torch, text by torch's helper), imported when first needed, so that `import gendiag` does not load
TensorBoard."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import torch

from gendiag.sinks import Sink
from gendiag.sinks.events import EventFile, scalar_event, summary_event

SCALAR_BATCH = 256  # scalars held back before they go to the file together
SCALAR_MAX_WAIT_S = 10.0  # ... or once the oldest has waited this long, so a live TensorBoard stays current
HISTOGRAM_BINS = 64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type (grey, RGB, grey + alpha, RGBA) -> channels


def histogram_proto(values: torch.Tensor, bins: int = HISTOGRAM_BINS) -> Any:
    """TensorBoard's HistogramProto of the finite values (None where there are none): `bins` equal buckets from
    their least to their greatest value (a constant's around it, one wide), each count at its bucket's right edge
    after an empty bucket at the left one (TensorBoard's convention: a bucket holds the values up to its limit), and
    the values' count, sum and sum of squares. Counted by torch.histc on the values' device: a fraction of what
    torch's numpy-based helper costs, where histograms are written from inside a training loop."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto

    values = values.detach().flatten()
    values = values.float() if values.dtype not in (torch.float32, torch.float64) else values
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        values = values[finite]
    if not values.numel():
        return None
    least, greatest = (v.item() for v in torch.aminmax(values))
    low, high = (least - 0.5, greatest + 0.5) if greatest == least else (least, greatest)
    counts = torch.histc(values, bins=bins, min=low, max=high).cpu()
    edges = torch.linspace(low, high, bins + 1, dtype=torch.float64)
    wide = values.double()
    return HistogramProto(min=least, max=greatest, num=values.numel(), sum=wide.sum().item(),
                          sum_squares=wide.dot(wide).item(), bucket_limit=edges.tolist(),
                          bucket=[0.0, *counts.tolist()])


class TensorBoardSink(Sink):
    """Every scalar, histogram, image and text of the run, in one event file of `log_dir`.

    Scalars are held back and written in batches (each with the wall time it was logged at), so that a curve with a
    point per step costs a few µs a point; images, text and histograms are written at once (they are rare)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self._file = EventFile(self.log_dir)
        self._scalars: list[bytes] = []
        self._oldest = 0.0

    def scalar(self, tag: str, value: float, step: int) -> None:
        now = time.time()
        if not self._scalars:
            self._oldest = now
        self._scalars.append(scalar_event(tag, float(value), int(step), now))
        if len(self._scalars) >= SCALAR_BATCH or now - self._oldest >= SCALAR_MAX_WAIT_S:
            self._write_scalars()

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        """A histogram of `values` (finite values only; none: nothing written)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        proto = histogram_proto(values)
        if proto is not None:
            self._summary(Summary(value=[Summary.Value(tag=tag, histo=proto)]), step)

    def image(self, tag: str, png: bytes, step: int) -> None:
        """An image already encoded as PNG (a figure drawn once for the run folder and for TensorBoard), logged
        as it is rather than decoded and re-encoded (about 60 ms a figure)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR" or png[25] not in PNG_CHANNELS:
            raise ValueError(f"TensorBoardSink.image: {tag!r} is not a PNG image (expected the PNG signature and header)")
        width, height = struct.unpack(">II", png[16:24])
        image = Summary.Image(height=height, width=width, colorspace=PNG_CHANNELS[png[25]], encoded_image_string=png)
        self._summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        from torch.utils.tensorboard.summary import text as text_summary

        self._summary(text_summary(tag, text), step)

    def layout(self, layout: dict[str, dict[str, list[Any]]]) -> None:
        """Custom-scalars layout: {category: {chart title: ["Multiline", [tag regexes]]}}."""
        from torch.utils.tensorboard.summary import custom_scalars

        self._summary(custom_scalars(layout), 0)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's settings and the names of its headline figures for the HParams dashboard; the figures
        themselves are scalars under those names (logged to every sink by `Monitor.log_hparams`)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        plain = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
        for summary in hparams_summaries(plain, metrics):
            self._summary(summary, 0)

    def flush(self) -> None:
        self._write_scalars()

    def close(self) -> None:
        if not self._file.closed:
            self._write_scalars()
            self._file.close()

    def _summary(self, summary: Any, step: int) -> None:
        if self._file.closed:
            raise ValueError(f"TensorBoardSink: {summary.value[0].tag!r} logged after the sink was closed")
        self._write_scalars()  # keep the file in the order things were logged
        self._file.add(summary_event(summary, int(step), time.time()))
        self._file.flush()

    def _write_scalars(self) -> None:
        if self._scalars:
            for event in self._scalars:
                self._file.add(event)
            self._scalars.clear()
            self._file.flush()

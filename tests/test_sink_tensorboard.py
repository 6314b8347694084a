"""The TensorBoard sink hands scalars to the writer in batches; nothing may be lost or re-timed on the way."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gendiag.sinks import tensorboard
from gendiag.sinks.tensorboard import TensorBoardSink


def _scalars(log_dir: Path, tag: str) -> list:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return events.Scalars(tag)


def test_batched_scalars_keep_every_value_step_and_wall_time(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path)
    count = tensorboard.SCALAR_BATCH + 7  # one full batch goes out on its own, the rest at flush
    logged_from = time.time()
    for step in range(count):
        sink.scalar("loss/train", step * 0.5, step)
    logged_until = time.time()
    time.sleep(0.3)
    sink.flush()
    written = _scalars(tmp_path, "loss/train")
    assert [event.step for event in written] == list(range(count))
    assert [event.value for event in written] == [step * 0.5 for step in range(count)]
    # each event carries the time it was logged at, not the later flush's (a bound on order, not on speed)
    assert all(logged_from - 0.01 <= event.wall_time <= logged_until + 0.01 for event in written)
    sink.close()


def test_an_old_pending_scalar_goes_out_without_a_flush(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tensorboard, "SCALAR_MAX_WAIT_S", 0.05)
    sink = TensorBoardSink(tmp_path)
    sink.scalar("loss/train", 1.0, 1)
    time.sleep(0.1)
    sink.scalar("loss/train", 2.0, 2)  # the first has waited past the limit: both go to the file, unflushed
    assert [event.step for event in _scalars(tmp_path, "loss/train")] == [1, 2]
    sink.close()


def test_a_saved_figure_is_the_same_image_in_the_run_folder_and_in_tensorboard(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from gendiag.context import ProbeContext
    from gendiag.sinks.scalars import ScalarTable

    ctx = ProbeContext(run_dir=tmp_path, task="generic", facts={}, tb=TensorBoardSink(tmp_path / "tb"),
                       table=ScalarTable(), step=7)
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.plot([0, 1], [1, 0])
    relative = ctx.save_figure(figure, "probe/curve")
    ctx.flush_figures()  # figures may be drawn in a child process: the file and the image are there after this
    ctx.tb.close()
    with Image.open(tmp_path / relative) as saved:
        size = saved.size
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    [logged] = events.Images("figures/probe/curve")
    assert relative == "figures/probe/curve.png" and logged.step == 7
    assert (logged.width, logged.height) == size
    assert logged.encoded_image_string == (tmp_path / relative).read_bytes()  # the very bytes, not a re-encoding
    assert not plt.get_fignums()  # closed


def test_png_rejects_bytes_that_are_not_a_png(tmp_path: Path) -> None:
    sink = TensorBoardSink(tmp_path)
    with pytest.raises(ValueError, match="'figures/x' is not a PNG image"):
        sink.image("figures/x", b"GIF89a" + bytes(40), 0)
    sink.close()


def test_a_histogram_counts_each_value_at_its_buckets_right_edge_and_reads_back(tmp_path: Path) -> None:
    values = torch.tensor([0.0, 1.0, 1.0, 2.5, 4.0, float("nan"), float("inf")])
    proto = tensorboard.histogram_proto(values, bins=4)
    assert list(proto.bucket_limit) == [0.0, 1.0, 2.0, 3.0, 4.0]  # 4 equal buckets from the least to the greatest
    assert list(proto.bucket) == [0.0, 1.0, 2.0, 1.0, 1.0]  # numpy's [0, 1), [1, 2), [2, 3), [3, 4]
    assert (proto.min, proto.max, proto.num, proto.sum, proto.sum_squares) == (0.0, 4.0, 5, 8.5, 24.25)
    constant = tensorboard.histogram_proto(torch.full((3,), 2.0), bins=2)
    assert (list(constant.bucket_limit), list(constant.bucket)) == ([1.5, 2.0, 2.5], [0.0, 0.0, 3.0])
    assert tensorboard.histogram_proto(torch.tensor([float("nan")])) is None
    sink = TensorBoardSink(tmp_path)
    sink.histogram("weights/w", torch.randn(1000, generator=torch.Generator().manual_seed(0)), step=7)
    sink.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    [read] = events.Reload().Histograms("weights/w")
    assert (read.step, read.histogram_value.num, sum(read.histogram_value.bucket)) == (7, 1000, 1000)

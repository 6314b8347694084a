"""gendiag's own event-file writer: its CRC-32C (google-crc32c's) is TensorBoard's checksum, its hand-encoded scalar
events parse as the Event protobuf, and its files read back through TensorBoard's own reader, record by record."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference_crc
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

from gendiag.sinks.events import EventFile, masked_crc32c, scalar_event


def test_checksums_equal_tensorboards_for_records_of_every_length() -> None:
    rng = random.Random(0)
    records = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000))) for _ in range(100)] + [b"", b"\x00"]
    assert [masked_crc32c(r) for r in records] == [reference_crc(r) for r in records]


@pytest.mark.parametrize("step", [0, 1, 127, 128, 300, 2**40, -5])
@pytest.mark.parametrize("tag", ["loss/train", "grad/norm/" + "layer." * 30 + "weight", "ünïcode/tag"])
def test_a_scalar_event_parses_as_the_event_protobuf(step: int, tag: str) -> None:
    event = Event()
    event.ParseFromString(scalar_event(tag, 0.375, step, 1234.5))
    assert (event.step, event.wall_time) == (step, 1234.5)
    [value] = event.summary.value
    assert (value.tag, value.simple_value) == (tag, 0.375)


def test_the_file_reads_back_record_by_record(tmp_path: Path) -> None:
    events = EventFile(tmp_path)
    for step in range(50):
        events.add(scalar_event("loss/train", step / 4, step, 10.0 + step))
    events.close()
    [path] = tmp_path.glob("events.out.tfevents.*")
    records = list(RawEventFileLoader(str(path)).Load())  # checks every record's two checksums
    parsed = [Event.FromString(record) for record in records]
    assert parsed[0].file_version == "brain.Event:2"
    assert [(e.step, e.summary.value[0].simple_value) for e in parsed[1:]] == [(s, s / 4) for s in range(50)]

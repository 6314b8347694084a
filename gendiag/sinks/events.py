"""A TensorBoard event file written in batches: scalar events encoded by hand, every record checksummed in C.

TensorBoard's own Python writer (behind torch's SummaryWriter) checksums each record byte by byte in pure Python
(about 0.2 ms a kilobyte: a histogram's record costs more than a small model's step) and builds a protobuf per
scalar. Here a scalar's event is encoded by hand (a few bytes of protobuf wire format), each record's CRC-32C comes
from google-crc32c's C implementation (a fraction of a µs a record), and a batch of records goes to the file in one
write. Other summaries (images, text, histograms, the custom-scalars layout, hparams) are protobufs serialised by
their own classes.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING

import google_crc32c

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(record: bytes) -> int:
    """The masked CRC-32C of a record: TFRecord's checksum of a record's length field and of its data."""
    crc = google_crc32c.value(record)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # protobuf's int64: a negative step as its two's complement
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """An Event proto holding one simple_value, in protobuf wire format (Event: wall_time = 1, step = 2,
    summary = 5; Summary: value = 1; Summary.Value: tag = 1, simple_value = 2)."""
    head = _SCALAR_HEADS.get(tag)
    if head is None:
        head = _SCALAR_HEADS[tag] = _scalar_head(tag)
    return b"".join((b"\x09", struct.pack("<d", wall_time), b"\x10", _varint(step), head, struct.pack("<f", value)))


_SCALAR_HEADS: dict[str, bytes] = {}  # per tag, the bytes of a scalar event from its summary field to the value


def _scalar_head(tag: str) -> bytes:
    name = tag.encode("utf-8")
    entry_head = b"\x0a" + _varint(len(name)) + name + b"\x15"
    entry_length = len(entry_head) + 4
    summary_length = 1 + len(_varint(entry_length)) + entry_length
    return b"\x2a" + _varint(summary_length) + b"\x0a" + _varint(entry_length) + entry_head


def summary_event(summary: "Summary", step: int, wall_time: float) -> bytes:
    """An Event proto holding a Summary built by its protobuf class."""
    from tensorboard.compat.proto.event_pb2 import Event

    return Event(wall_time=wall_time, step=step, summary=summary).SerializeToString()


def framed(event: bytes) -> bytes:
    """A TFRecord: the event's length (uint64), that field's masked CRC-32C, the event, the event's."""
    length = struct.pack("<Q", len(event))
    return b"".join((length, struct.pack("<I", masked_crc32c(length)), event, struct.pack("<I", masked_crc32c(event))))


class EventFile:
    """One `events.out.tfevents.*` file in `log_dir`: `add` holds an encoded event, `flush` writes the held ones."""

    _made = 0  # files made by this process: two sinks in one second get distinct names

    def __init__(self, log_dir: Path) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        log_dir.mkdir(parents=True, exist_ok=True)
        EventFile._made += 1
        self.path = log_dir / (f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}."
                               f"{EventFile._made}.gendiag")
        self._file = self.path.open("ab")
        self._pending: list[bytes] = [Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString()]
        self.flush()

    def add(self, event: bytes) -> None:
        self._pending.append(event)

    def flush(self) -> None:
        if self._file.closed:
            raise ValueError(f"EventFile: {self.path} is closed; nothing more can be written to it")
        if not self._pending:
            return
        self._file.write(b"".join(framed(event) for event in self._pending))
        self._file.flush()
        self._pending.clear()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

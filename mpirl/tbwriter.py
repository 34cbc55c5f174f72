"""Minimal, dependency-free TensorBoard event-file writer for scalars.

Importing tensorboard or torch.utils.tensorboard costs ~2 s of start-up time,
so we hand-encode the few protobuf messages and the TFRecord framing here.
"""
import math
import os
import socket
import struct
import time

# Built once at import: 256 entries is cheap and makes crc32c table-driven.
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)
del _i, _c


def crc32c(data: bytes) -> int:
    """Return the CRC-32C (Castagnoli) checksum of ``data``."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE  # local lookup is noticeably faster in the hot loop
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """Return the masked CRC-32C used by the TFRecord format."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _len_delimited(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _encode_value(tag: str, value: float) -> bytes:
    # Summary.Value {string tag = 1; float simple_value = 2}
    return _len_delimited(1, tag.encode("utf-8")) + _key(2, 5) + struct.pack("<f", value)


def _encode_event(wall_time: float, step: int = 0, file_version: str = None,
                  values=None, session_start: bool = False) -> bytes:
    # Event {double wall_time = 1; int64 step = 2; string file_version = 3;
    #        Summary summary = 5; SessionLog session_log = 7}
    out = _key(1, 1) + struct.pack("<d", wall_time)
    if step:
        out += _key(2, 0) + _varint(step)
    if file_version is not None:
        out += _len_delimited(3, file_version.encode("utf-8"))
    if values is not None:
        summary = b"".join(_len_delimited(1, _encode_value(t, v)) for t, v in values)
        out += _len_delimited(5, summary)
    if session_start:
        # SessionLog {SessionStatus status = 1}, START = 1
        out += _len_delimited(7, _key(1, 0) + _varint(1))
    return out


def _frame(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", masked_crc32c(header)) + data
            + struct.pack("<I", masked_crc32c(data)))


def _to_f32(value: float) -> float:
    # struct.pack("<f") raises OverflowError for finite values beyond the
    # float32 range; TensorBoard would store those as +/-inf, so do the same.
    value = float(value)
    if math.isfinite(value) and abs(value) > 3.4028234663852886e38:
        return math.copysign(math.inf, value)
    return value


class EventWriter:
    """Write scalar summaries to a TensorBoard event file in ``logdir``."""

    def __init__(self, logdir: str):
        """Create ``logdir`` if needed and open a new event file in it."""
        os.makedirs(logdir, exist_ok=True)
        name = "events.out.tfevents.%d.%s.%d.0" % (
            int(time.time()), socket.gethostname(), os.getpid())
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "wb")
        # TensorBoard identifies the format version from the first record.
        self._write(_encode_event(time.time(), file_version="brain.Event:2"))

    def _write(self, event: bytes) -> None:
        if self._file is None:
            raise ValueError("EventWriter is closed")
        self._file.write(_frame(event))

    def add_scalar(self, tag: str, value: float, step: int,
                   wall_time: float = None) -> None:
        """Record scalar ``value`` under ``tag`` at ``step``."""
        self.add_scalars({tag: value}, step, wall_time)

    def add_scalars(self, values: dict, step: int, wall_time: float = None) -> None:
        """Record several ``{tag: value}`` scalars at ``step`` in one event."""
        step = int(step)
        if step < 0:
            raise ValueError("step must be non-negative, got %d" % step)
        if wall_time is None:
            wall_time = time.time()
        items = [(str(t), _to_f32(v)) for t, v in values.items()]
        self._write(_encode_event(float(wall_time), step, values=items))

    def session_start(self, step: int) -> None:
        """Record a restart at ``step``: TensorBoard drops the points at ``step`` and later logged before it.

        (TensorBoard's purge of orphaned data after a restart, as when a run
        resumes from a checkpoint older than its last logged points.)
        """
        self._write(_encode_event(time.time(), int(step), session_start=True))

    def flush(self) -> None:
        """Push buffered records to the OS so readers can see them."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close the event file; further writes raise ValueError."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

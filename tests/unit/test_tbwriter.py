import glob
import math
import struct

import numpy as np
import pytest

from mpirl.tbwriter import EventWriter, crc32c, masked_crc32c


def _read_records(path):
    """Parse a TFRecord file, validating both checksums of every record."""
    records = []
    with open(path, "rb") as f:
        raw = f.read()
    pos = 0
    while pos < len(raw):
        header = raw[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", raw[pos + 8:pos + 12])
        assert hcrc == masked_crc32c(header)
        data = raw[pos + 12:pos + 12 + length]
        assert len(data) == length
        (dcrc,) = struct.unpack("<I", raw[pos + 12 + length:pos + 16 + length])
        assert dcrc == masked_crc32c(data)
        records.append(data)
        pos += 16 + length
    return records


def _event_file(logdir):
    files = glob.glob(str(logdir / "events.out.tfevents.*"))
    assert len(files) == 1
    return files[0]


def test_crc32c_known_vectors():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA


def test_records_have_valid_checksums(tmp_path):
    with EventWriter(str(tmp_path)) as w:
        w.add_scalar("loss", 1.5, 0)
        w.add_scalar("loss", 0.5, 300)
    records = _read_records(_event_file(tmp_path))
    assert len(records) == 3
    assert b"brain.Event:2" in records[0]


def test_negative_step_rejected(tmp_path):
    with EventWriter(str(tmp_path)) as w:
        with pytest.raises(ValueError):
            w.add_scalar("x", 1.0, -1)


def test_roundtrip_with_tensorboard_reader(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    expected = {
        "train/loss": [(0, 2.5), (1, 1.25), (10, 0.1), (1000000, -3.3)],
        "eval/return": [(5, 123.456), (7, float("inf")), (9, 1e-8)],
    }
    with EventWriter(str(tmp_path)) as w:
        for tag, points in expected.items():
            for step, value in points:
                w.add_scalar(tag, value, step, wall_time=1000.0 + step)
        w.add_scalars({"multi/a": 1.0, "multi/b": float("nan")}, step=3)

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert tags == set(expected) | {"multi/a", "multi/b"}
    for tag, points in expected.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [s for s, _ in points]
        assert [e.value for e in events] == [float(np.float32(v)) for _, v in points]
        assert [e.wall_time for e in events] == [1000.0 + s for s, _ in points]
    assert [e.value for e in acc.Scalars("multi/a")] == [1.0]
    assert math.isnan(acc.Scalars("multi/b")[0].value)


def test_add_scalars_writes_one_event(tmp_path):
    with EventWriter(str(tmp_path)) as w:
        w.add_scalars({"a": 1.0, "b": 2.0, "c": 3.0}, step=7, wall_time=42.0)
    records = _read_records(_event_file(tmp_path))
    assert len(records) == 2  # file_version header + one summary event
    event = records[1]
    assert event.startswith(b"\x09" + struct.pack("<d", 42.0) + b"\x10\x07")
    for tag, value in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
        value_msg = b"\x0a\x01" + tag.encode() + b"\x15" + struct.pack("<f", value)
        assert bytes([0x0A, len(value_msg)]) + value_msg in event
    assert event.count(b"\x15") == 3

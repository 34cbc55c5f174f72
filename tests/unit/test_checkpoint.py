"""HDF5 checkpoints: round trip, atomic replace, pruning, damage detection, fallback."""
import json
import os

import h5py
import numpy as np
import pytest

from mpirl import checkpoint as ck
from mpirl.errors import CheckpointError
from mpirl.seeding import capture_rng_state, restore_rng_state


def save(d, steps, q=None, keep=3):
    q = np.arange(12.0).reshape(3, 4) * steps if q is None else q
    return ck.save(str(d), steps, {"q": q, "net/w": np.ones((2, 2), np.float32)},
                   {"env_steps": steps, "updates": steps // 10}, {0: {"a": 1}, 1: {"b": [1, 2]}},
                   "tabular_q", "FrozenLake-v1", {"algo": "tabular_q", "seed": 1}, 'algo = "tabular_q"\n', keep)


def test_round_trip(tmp_path):
    path = save(tmp_path, 100)
    c = ck.load(path)
    assert c.algo == "tabular_q" and c.env_id == "FrozenLake-v1" and c.format_version == ck.FORMAT_VERSION
    np.testing.assert_array_equal(c.state["q"], np.arange(12.0).reshape(3, 4) * 100)
    assert c.state["net/w"].dtype == np.float32
    assert c.counters == {"env_steps": 100, "updates": 10}
    assert c.rng == {0: {"a": 1}, 1: {"b": [1, 2]}}
    assert c.config == {"algo": "tabular_q", "seed": 1}
    assert "numpy" in c.versions and "h5py" in c.versions
    meta = c.metadata()
    json.dumps(meta)
    assert meta["state"]["q"]["shape"] == [3, 4]


def test_latest_points_at_newest_and_old_ones_are_pruned(tmp_path):
    for steps in (10, 20, 30, 40):
        save(tmp_path, steps, keep=2)
    assert os.readlink(tmp_path / "latest.h5") == "ckpt-40.h5"
    assert sorted(os.listdir(tmp_path)) == ["ckpt-30.h5", "ckpt-40.h5", "latest.h5"]
    assert ck.load_latest(str(tmp_path)).counters["env_steps"] == 40


def test_no_tmp_file_left_and_no_pickle(tmp_path):
    save(tmp_path, 5)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    with h5py.File(tmp_path / "ckpt-5.h5", "r") as f:
        kinds = set()
        f.visititems(lambda n, o: kinds.add(o.dtype.kind) if hasattr(o, "dtype") else None)
    assert "O" not in kinds  # no object (pickled) datasets


def test_flipped_byte_in_data_is_detected(tmp_path):
    path = save(tmp_path, 7)
    with h5py.File(path, "r") as f:
        offset = f["state/q"].id.get_offset()
    with open(path, "r+b") as f:
        f.seek(offset + 3)
        b = f.read(1)
        f.seek(offset + 3)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match=r"ckpt-7.h5 is corrupted: checksum mismatch"):
        ck.load(path)


@pytest.mark.parametrize("keep_bytes", [0, 100, 1000, 3000])
def test_truncated_file_names_the_file(tmp_path, keep_bytes):
    path = save(tmp_path, 9)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:keep_bytes])
    with pytest.raises(CheckpointError, match="ckpt-9.h5"):
        ck.load(path)


def test_resume_falls_back_to_previous_good_checkpoint(tmp_path):
    save(tmp_path, 10)
    newest = save(tmp_path, 20)
    open(newest, "r+b").truncate(500)
    said = []
    c = ck.load_latest(str(tmp_path), warn=said.append)
    assert c.counters["env_steps"] == 10
    assert any("ckpt-20.h5" in s and "falling back" in s for s in said)
    assert any("resuming from" in s and "ckpt-10.h5" in s for s in said)


def test_no_checkpoint_at_all(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        ck.load_latest(str(tmp_path))


def test_tmp_file_killed_before_rename_is_never_latest(tmp_path):
    save(tmp_path, 10)
    # What a kill between writing and renaming leaves behind:
    open(tmp_path / "ckpt-20.h5.tmp", "wb").write(b"half written")
    assert ck.load_latest(str(tmp_path)).counters["env_steps"] == 10


def test_rng_state_round_trips_through_json():
    import random

    gen = np.random.default_rng(5)
    doc = json.loads(json.dumps(capture_rng_state(gen)))
    a = (random.random(), np.random.rand(), gen.random())
    restore_rng_state(doc, gen)
    assert (random.random(), np.random.rand(), gen.random()) == a


def test_seeded_corruptions_never_crash_or_load_wrong_data(tmp_path):
    """240 seeded damages (byte flips anywhere, truncations): a CheckpointError naming the file, or the exact data.

    A flip can land in bytes HDF5 never reads (free space, padding); such a
    file still holds the checkpoint unchanged, so loading it is correct. What
    must never happen is another exception type or different data.
    """
    original = save(tmp_path, 50)
    good = ck.load(original)
    blob = open(original, "rb").read()
    rng = np.random.default_rng(2026)
    outcomes = {"error": 0, "intact": 0}
    for case in range(240):
        path = str(tmp_path / f"case-{case}.h5")
        data = bytearray(blob)
        if case < 160:
            for pos in rng.integers(len(data), size=int(rng.integers(1, 9))):
                data[pos] ^= int(rng.integers(1, 256))
        else:
            data = data[: int(rng.integers(len(data)))]
        with open(path, "wb") as f:
            f.write(bytes(data))
        try:
            c = ck.load(path)
        except CheckpointError as e:
            assert f"case-{case}.h5" in str(e)
            outcomes["error"] += 1
            continue
        assert c.counters == good.counters and c.rng == good.rng and c.config == good.config, case
        assert sorted(c.state) == sorted(good.state), case
        for k, v in good.state.items():
            np.testing.assert_array_equal(c.state[k], v)
        outcomes["intact"] += 1
    assert outcomes["error"] >= 150, outcomes  # most damage is detected, not harmless

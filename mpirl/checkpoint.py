"""HDF5 checkpoints: atomic, checksummed, pickle-free, with a ``latest.h5`` pointer.

Layout of ``ckpt-<env_steps>.h5`` (see docs/checkpoints.md):

- root attributes: ``format_version``, ``algo``, ``env_id``, ``config_json``,
  ``config_toml``, ``versions_json``, ``created``, ``checksum`` (sha256);
- ``state/<name>``: the algorithm's arrays (Q-tables, network and optimizer tensors);
- ``counters/<name>``: scalar datasets (env_steps, updates, episodes, wall_time_s, ...);
- ``rng/rank_<k>``: rank k's RNG states (python, numpy, torch) as UTF-8 JSON bytes.

Only rank 0 writes. A file is written as ``*.tmp`` in the same folder,
flushed and fsynced, renamed into place, and only then does ``latest.h5``
(a symlink) move to it, so a kill at any moment leaves the previous
checkpoint readable. Loading verifies the checksum and never unpickles.
"""
from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from mpirl.errors import CheckpointError

FORMAT_VERSION = 1
LATEST = "latest.h5"
_CKPT_RE = re.compile(r"ckpt-(\d+)\.h5$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: arrays, counters, RNG states per rank and metadata."""

    path: str
    state: dict
    counters: dict
    rng: dict
    algo: str
    env_id: str
    config: dict
    versions: dict
    format_version: int
    attrs: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        """What ``mpirl inspect`` prints."""
        return {
            "path": self.path,
            "format_version": self.format_version,
            "algo": self.algo,
            "env_id": self.env_id,
            "counters": self.counters,
            "state": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in self.state.items()},
            "ranks_with_rng_state": sorted(self.rng),
            "config": self.config,
            "versions": self.versions,
            "created": self.attrs.get("created", ""),
        }


def library_versions() -> dict:
    """Versions of mpirl and the libraries a checkpoint depends on (without importing them)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("mpirl", "numpy", "h5py", "gymnasium", "torch", "mpi4py"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


# Datasets above this size are written and hashed in slabs along their first axis: a replay memory of
# millions of frames (7 GB) is then never copied whole (once to read it back, once more by tobytes).
_SLAB_BYTES = 64 << 20


def _slabs(shape, itemsize: int):
    """``(start, stop)`` ranges of the first axis, each about _SLAB_BYTES."""
    row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    step = max(1, _SLAB_BYTES // row)
    return [(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def _hash_dataset(h, name: str, ds) -> None:
    if ds.ndim == 0 or ds.size * ds.dtype.itemsize <= _SLAB_BYTES:
        data = np.ascontiguousarray(ds[()])  # (a scalar becomes shape (1,): part of the format)
        h.update(f"{name}|{data.dtype.str}|{data.shape}|".encode())
        h.update(data.tobytes())
        return
    # The same bytes in the same order as the whole-array form above, so checksums do not change.
    h.update(f"{name}|{ds[0:1].dtype.str}|{tuple(ds.shape)}|".encode())
    for i, j in _slabs(ds.shape, ds.dtype.itemsize):
        h.update(np.ascontiguousarray(ds[i:j]).data)


def _write_dataset(f, name: str, arr) -> None:
    arr = np.asarray(arr)
    if arr.ndim == 0 or arr.nbytes <= _SLAB_BYTES:
        f.create_dataset(name, data=arr)
        return
    ds = f.create_dataset(name, shape=arr.shape, dtype=arr.dtype)
    for i, j in _slabs(arr.shape, arr.dtype.itemsize):
        ds[i:j] = arr[i:j]


def _checksum(f) -> str:
    h = hashlib.sha256()
    names = []
    f.visit(lambda name: names.append(name) if hasattr(f[name], "dtype") else None)
    for name in sorted(names):
        _hash_dataset(h, name, f[name])
    for key in sorted(f.attrs):
        if key != "checksum":
            h.update(f"@{key}={_attr(f.attrs[key])}".encode())
    return h.hexdigest()


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(ckpt_dir: str, env_steps: int, state: dict, counters: dict, rng: dict, algo: str,
         env_id: str, config: dict, config_toml: str, keep: int = 3) -> str:
    """Write ``ckpt-<env_steps>.h5`` atomically, point ``latest.h5`` at it, prune old ones."""
    import h5py

    os.makedirs(ckpt_dir, exist_ok=True)
    final = os.path.join(ckpt_dir, f"ckpt-{int(env_steps)}.h5")
    tmp = final + ".tmp"
    with h5py.File(tmp, "w", locking=False) as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["algo"] = algo
        f.attrs["env_id"] = env_id
        f.attrs["config_json"] = json.dumps(config, sort_keys=True)
        f.attrs["config_toml"] = config_toml
        f.attrs["versions_json"] = json.dumps(library_versions(), sort_keys=True)
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        for i, (name, arr) in enumerate(state.items()):
            _write_dataset(f, f"state/{name}", arr)
            if i == (len(state) - 1) // 2 and _fault_armed("checkpoint_mid_write"):
                f.flush()  # so that the kill leaves a half-written file on disk, not only in HDF5's cache
                _fault_point("checkpoint_mid_write", tmp)
        for name, value in counters.items():
            f.create_dataset(f"counters/{name}", data=np.asarray(value))
        for rank, doc in rng.items():
            f.create_dataset(f"rng/rank_{int(rank)}",
                             data=np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8))
        f.attrs["checksum"] = _checksum(f)
        f.flush()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    _fault_point("checkpoint_before_rename", tmp)
    os.replace(tmp, final)
    _fsync_dir(ckpt_dir)
    _fault_point("checkpoint_before_link", final)
    link_tmp = os.path.join(ckpt_dir, LATEST + ".tmp")
    if os.path.lexists(link_tmp):
        os.remove(link_tmp)
    os.symlink(os.path.basename(final), link_tmp)
    os.replace(link_tmp, os.path.join(ckpt_dir, LATEST))
    _fsync_dir(ckpt_dir)
    prune(ckpt_dir, keep)
    return final


def _fault_armed(name: str) -> bool:
    return os.environ.get("MPIRL_FAULT") == name


def _fault_point(name: str, path: str) -> None:
    # Fault injection for tests: MPIRL_FAULT=<name> kills this process here (SIGKILL, no clean-up),
    # proving that a half-done checkpoint never becomes ``latest``.
    if _fault_armed(name):
        os.kill(os.getpid(), 9)


def nonfinite_arrays(state: dict) -> list:
    """Names of the floating-point arrays of ``state`` holding NaN or inf (replay memories excluded)."""
    bad = []
    for name, arr in state.items():
        arr = np.asarray(arr)
        if not name.startswith("replay/") and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad.append(name)
    return sorted(bad)


def list_checkpoints(ckpt_dir: str) -> list:
    """Complete checkpoint files in ``ckpt_dir``, newest (most env steps) first."""
    found = []
    for path in glob.glob(os.path.join(ckpt_dir, "ckpt-*.h5")):
        m = _CKPT_RE.search(os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found, reverse=True)]


def prune(ckpt_dir: str, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (never the one ``latest.h5`` names)."""
    latest = os.path.realpath(os.path.join(ckpt_dir, LATEST))
    for path in list_checkpoints(ckpt_dir)[keep:]:
        if os.path.realpath(path) != latest:
            os.remove(path)


def load(path: str) -> Checkpoint:
    """Read and verify a checkpoint; any damage raises :class:`CheckpointError` naming the file."""
    import h5py

    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with h5py.File(path, "r", locking=False) as f:
            if "checksum" not in f.attrs:
                raise CheckpointError(f"checkpoint {path} has no checksum (incomplete or not an mpirl checkpoint)")
            if _attr(f.attrs["checksum"]) != _checksum(f):
                raise CheckpointError(f"checkpoint {path} is corrupted: checksum mismatch")
            version = int(_attr(f.attrs["format_version"]))
            if version > FORMAT_VERSION:
                raise CheckpointError(f"checkpoint {path} has format version {version}; "
                                      f"this mpirl reads up to {FORMAT_VERSION}")
            state = {}
            if "state" in f:
                f["state"].visititems(lambda n, o: state.__setitem__(n, o[()]) if hasattr(o, "dtype") else None)
            counters = {k: _attr(f["counters"][k][()]) for k in f["counters"]} if "counters" in f else {}
            rng = {}
            if "rng" in f:
                for k in f["rng"]:
                    rng[int(k.split("_")[1])] = json.loads(f["rng"][k][()].tobytes().decode())
            return Checkpoint(
                path=path, state=state, counters=counters, rng=rng,
                algo=_attr(f.attrs["algo"]), env_id=_attr(f.attrs["env_id"]),
                config=json.loads(_attr(f.attrs["config_json"])),
                versions=json.loads(_attr(f.attrs["versions_json"])),
                format_version=version,
                attrs={k: _attr(f.attrs[k]) for k in f.attrs if k in ("created", "checksum")},
            )
    except CheckpointError:
        raise
    except Exception as e:  # h5py raises OSError, KeyError, ValueError... on damaged files
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted): "
                              f"{type(e).__name__}: {e}") from None


def load_latest(ckpt_dir: str, warn=print) -> Checkpoint:
    """Load ``latest.h5``, falling back to older checkpoints (newest first) if it is damaged."""
    candidates = []
    latest = os.path.join(ckpt_dir, LATEST)
    if os.path.exists(latest):
        candidates.append(os.path.realpath(latest))
    candidates += [p for p in list_checkpoints(ckpt_dir) if os.path.realpath(p) not in candidates]
    if not candidates:
        raise CheckpointError(f"no checkpoint to resume from in {ckpt_dir}")
    errors = []
    for path in candidates:
        try:
            ckpt = load(path)
        except CheckpointError as e:
            errors.append(str(e))
            warn(f"mpirl: {e}; falling back to the previous checkpoint")
            continue
        if errors:
            warn(f"mpirl: resuming from {path}")
        return ckpt
    raise CheckpointError(f"no readable checkpoint in {ckpt_dir}: " + " | ".join(errors))

"""Uniform experience replay: one preallocated numpy array per field, ring eviction.

A transition is a row across all field arrays; there are no per-transition
Python objects, so inserts and samples are a few vectorised copies.
"""
from __future__ import annotations

import numpy as np

_DATA = "data/"  # state_dict key prefix; "/" nests cleanly in the HDF5 checkpoint layout


def _normalise_spec(spec: dict) -> dict:
    if not spec:
        raise ValueError("replay spec must name at least one field")
    out = {}
    for name, (shape, dtype) in spec.items():
        if "/" in name:
            raise ValueError(f"replay field name {name!r} must not contain '/'")
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        out[str(name)] = (shape, np.dtype(dtype))
    return out


class ReplayBuffer:
    """Fixed-capacity FIFO ring of transitions described by ``spec``.

    ``spec`` maps field name -> (per-transition shape, dtype), e.g.
    ``{"obs": ((4,), np.float32), "action": ((), np.int64)}``.
    """

    def __init__(self, capacity: int, spec: dict):
        capacity = int(capacity)
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self.spec = _normalise_spec(spec)
        self._storage = {k: np.zeros((capacity,) + shape, dtype) for k, (shape, dtype) in self.spec.items()}
        self._insert_pos = 0
        self._size = 0

    # -- sizes ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Maximum number of transitions held."""
        return self._capacity

    @property
    def insert_pos(self) -> int:
        """Row the next inserted transition goes to."""
        return self._insert_pos

    @property
    def nbytes(self) -> int:
        """Bytes of preallocated storage (all fields, full capacity)."""
        return sum(a.nbytes for a in self._storage.values())

    @property
    def bytes_per_transition(self) -> int:
        """Storage bytes of one transition (one row across all fields)."""
        return sum(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in self.spec.values())

    @property
    def storage(self) -> dict:
        """The raw field arrays (full capacity; rows >= len(self) are unused). Read only."""
        return self._storage

    # -- insert / sample -----------------------------------------------------
    def validate_batch(self, batch: dict) -> int:
        """Check ``batch`` has exactly the spec's fields with shapes (n,)+shape; return n."""
        if set(batch) != set(self.spec):
            raise KeyError(f"batch fields {sorted(batch)} != replay fields {sorted(self.spec)}")
        n = None
        for k, (shape, _) in self.spec.items():
            a = np.asarray(batch[k])
            if a.shape[1:] != shape:
                raise ValueError(f"field {k!r}: expected shape (n,)+{shape}, got {a.shape}")
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ValueError(f"field {k!r} has {a.shape[0]} rows, other fields have {n}")
        return n

    def add(self, batch: dict) -> np.ndarray:
        """Insert a batch of n transitions (each field shaped (n,)+shape); return the rows written.

        If n > capacity only the last ``capacity`` transitions can survive, so
        only those are written; the result then has ``capacity`` entries, in
        the order of ``batch[k][-capacity:]``. Otherwise it has n entries.
        """
        n = self.validate_batch(batch)
        cap = self._capacity
        m = min(n, cap)
        # Skipping the n - m rows that would be overwritten anyway keeps the
        # final state identical to inserting all n one by one.
        start = (self._insert_pos + n - m) % cap
        first = min(m, cap - start)  # rows before the wrap-around
        for k, arr in self._storage.items():
            src = np.asarray(batch[k])[n - m:]
            arr[start:start + first] = src[:first]
            arr[:m - first] = src[first:]
        self._insert_pos = (self._insert_pos + n) % cap
        self._size = min(self._size + n, cap)
        return (start + np.arange(m, dtype=np.int64)) % cap

    def get(self, indices: np.ndarray) -> dict:
        """Rows ``indices`` of every field, as fresh arrays (fancy indexing)."""
        indices = np.asarray(indices, dtype=np.int64)
        return {k: arr[indices] for k, arr in self._storage.items()}

    def sample(self, batch_size: int, rng: np.random.Generator):
        """Draw ``batch_size`` rows uniformly with replacement: ``(indices, {field: array})``."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        indices = rng.integers(0, self._size, size=int(batch_size), dtype=np.int64)
        return indices, self.get(indices)

    # -- checkpoints ---------------------------------------------------------
    def state_dict(self) -> dict:
        """Arrays for a checkpoint: ``data/<field>`` (filled rows only), ``insert_pos``, ``size``.

        Rows fill from 0 upwards until the ring is full, so rows [0, size) are
        exactly the filled part whether or not the buffer has wrapped. The
        rows are views, not copies (a memory of a million frames is not
        duplicated to be written): valid until the next :meth:`add`.
        """
        d = {_DATA + k: arr[:self._size] for k, arr in self._storage.items()}
        d["insert_pos"] = np.array(self._insert_pos, dtype=np.int64)
        d["size"] = np.array(self._size, dtype=np.int64)
        return d

    def load_state_dict(self, d: dict) -> None:
        """Restore memory and insert position from :meth:`state_dict` output (same spec and capacity)."""
        size, pos = int(d["size"]), int(d["insert_pos"])
        if not (0 <= size <= self._capacity and 0 <= pos < self._capacity):
            raise ValueError(f"replay state (size={size}, insert_pos={pos}) does not fit capacity {self._capacity}")
        if size < self._capacity and pos != size:
            raise ValueError(f"replay state inconsistent: size={size} < capacity but insert_pos={pos}")
        fields = {k[len(_DATA):] for k in d if k.startswith(_DATA)}
        if fields != set(self.spec):
            raise KeyError(f"replay state fields {sorted(fields)} != replay fields {sorted(self.spec)}")
        for k, (shape, dtype) in self.spec.items():
            a = np.asarray(d[_DATA + k])
            # Accept the whole array too, as long as it holds the filled rows.
            if a.shape[1:] != shape or a.shape[0] not in (size, self._capacity):
                raise ValueError(f"replay state field {k!r} has shape {a.shape}, "
                                 f"expected ({size},)+{shape} or ({self._capacity},)+{shape}")
            if a.dtype != dtype:
                raise ValueError(f"replay state field {k!r} has dtype {a.dtype}, expected {dtype}")
        for k, arr in self._storage.items():
            arr[:size] = np.asarray(d[_DATA + k])[:size]
            arr[size:] = 0
        self._size, self._insert_pos = size, pos

"""Preallocated message buffers.

A message is described once by a spec ``{name: (shape, dtype)}``; the buffer is
one contiguous byte array with named numpy views into it, allocated once and
recycled, so every send or collective moves one buffer at C speed (no pickling,
no per-message allocation). This module imports neither mpi4py nor torch (flat
parameter vectors are in :mod:`mpirl.params`).
"""
from __future__ import annotations

from typing import Dict, Mapping, Tuple

import numpy as np

Spec = Mapping[str, Tuple[tuple, object]]
_ALIGN = 8


class MessageSpec:
    """The layout of one message kind: named fields with fixed shapes and dtypes."""

    def __init__(self, fields: Spec):
        if not fields:
            raise ValueError("a message spec needs at least one field")
        self.fields: Dict[str, Tuple[tuple, np.dtype]] = {}
        self.offsets: Dict[str, int] = {}
        offset = 0
        for name, (shape, dtype) in fields.items():
            shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
            if any(s < 0 for s in shape):
                raise ValueError(f"field {name!r} has a negative dimension: {shape}")
            dtype = np.dtype(dtype)
            offset = -(-offset // _ALIGN) * _ALIGN
            self.fields[name] = (shape, dtype)
            self.offsets[name] = offset
            offset += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self.nbytes = max(-(-offset // _ALIGN) * _ALIGN, _ALIGN)

    def allocate(self) -> "Message":
        """Allocate one zeroed message buffer of this spec."""
        return Message(self)

    def view(self, buffer: np.ndarray) -> "Message":
        """A message whose fields are views into an existing uint8 ``buffer`` (no copy)."""
        return Message(self, buffer)

    def __repr__(self):
        return f"MessageSpec({self.fields}, nbytes={self.nbytes})"


class Message:
    """One preallocated buffer; ``msg["name"]`` is a numpy view of a field."""

    def __init__(self, spec: MessageSpec, buffer: np.ndarray | None = None):
        self.spec = spec
        if buffer is None:
            buffer = np.zeros(spec.nbytes, dtype=np.uint8)
        elif buffer.dtype != np.uint8 or buffer.shape != (spec.nbytes,) or not buffer.flags.c_contiguous:
            raise ValueError(f"buffer must be contiguous uint8 of shape ({spec.nbytes},), "
                             f"got {buffer.dtype} {buffer.shape}")
        self.buffer = buffer
        self.views: Dict[str, np.ndarray] = {}
        for name, (shape, dtype) in spec.fields.items():
            start = spec.offsets[name]
            n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            self.views[name] = self.buffer[start:start + n].view(dtype).reshape(shape)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.views[name]

    def __setitem__(self, name: str, value) -> None:
        self.views[name][...] = value

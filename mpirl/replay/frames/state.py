"""The frame replay's checkpoint arrays: views of its storage out, checked copies in.

Keys (under ``replay/`` in a checkpoint): ``frames`` (the written part of the
frame ring), ``refs``, ``key`` and ``data/<field>`` (the written part of the
transition ring), the counters ``head``, ``tail``, ``frame_head`` and
``size``, the layout ``capacity``, ``frame_capacity``, ``stack``, and per
stream source the frame serials ``streams/<source>/serials`` ``[m, B, k]``
and bytes ``streams/<source>/rows`` ``[m, B, *obs_shape]`` of its last
rows, so that a resumed replay shares and evicts frames exactly as an
uninterrupted one.
"""
from __future__ import annotations

import numpy as np

_DATA = "data/"


def _scalar(v) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def frame_state(rep) -> dict:
    """``rep``'s state: the frame and transition arrays are views (no copy of a memory of a million frames)."""
    filled, written = min(rep._head, rep._capacity), min(rep._fhead, rep._fcap)
    d = {"frames": rep._frames[:written], "refs": rep._refs[:filled], "key": rep._key[:filled]}
    d.update({_DATA + k: a[:filled] for k, a in rep._rows.items()})
    d.update({k: _scalar(v) for k, v in (("head", rep._head), ("tail", rep._tail), ("frame_head", rep._fhead),
                                          ("size", len(rep)), ("capacity", rep._capacity),
                                          ("frame_capacity", rep._fcap), ("stack", rep.layout.k))})
    for source, (serials, rows) in rep._streams.items():
        d[f"streams/{int(source)}/serials"], d[f"streams/{int(source)}/rows"] = serials, rows
    return d


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(f"frame replay state: {what}")


def load_frame_state(rep, d: dict) -> None:
    """Restore ``rep`` from :func:`frame_state` output; a state of another layout raises ValueError."""
    for name, mine in (("capacity", rep._capacity), ("frame_capacity", rep._fcap), ("stack", rep.layout.k)):
        _check(name in d and int(d[name]) == mine, f"{name} {int(d[name]) if name in d else None} != this "
                                                   f"replay's {mine}")
    head, tail, fhead = int(d["head"]), int(d["tail"]), int(d["frame_head"])
    _check(0 <= tail <= head and head - tail <= rep._capacity and fhead >= 0,
           f"counters head={head} tail={tail} frame_head={fhead} do not fit capacity {rep._capacity}")
    fields = {k[len(_DATA):] for k in d if k.startswith(_DATA)}
    if fields != set(rep._rows):
        raise KeyError(f"frame replay state fields {sorted(fields)} != replay fields {sorted(rep._rows)}")
    filled, written = min(head, rep._capacity), min(fhead, rep._fcap)
    arrays = [("frames", rep._frames, written), ("refs", rep._refs, filled), ("key", rep._key, filled)]
    arrays += [(_DATA + k, a, filled) for k, a in rep._rows.items()]
    for name, mine, n in arrays:
        a = np.asarray(d[name])
        _check(a.shape == (n,) + mine.shape[1:] and a.dtype == mine.dtype,
               f"{name!r} is {a.dtype} {a.shape}, expected {mine.dtype} {(n,) + mine.shape[1:]}")
    for name, mine, n in arrays:
        mine[:n] = d[name]
        mine[n:] = 0
    streams = {}
    for name in d:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "streams" and parts[2] == "serials":
            serials, rows = np.asarray(d[name], np.int64), np.asarray(d[f"streams/{parts[1]}/rows"])
            _check(serials.ndim == 3 and serials.shape[2] == rep.layout.k
                   and rows.shape == serials.shape[:2] + rep.layout.obs_shape, f"stream {parts[1]} state shapes "
                   f"{serials.shape} and {rows.shape}")
            streams[int(parts[1])] = (serials.copy(), rows.astype(rep.layout.dtype))
    rep._streams = streams
    rep._head, rep._tail, rep._fhead = head, tail, fhead
    rep.dropped = np.zeros(0, np.int64)

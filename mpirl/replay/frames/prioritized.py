"""Proportional prioritized replay (Ape-X) over the frame-deduplicating memory.

The sampling, weights and priority bookkeeping are :class:`PrioritizedReplay`'s;
what differs is that the live transitions are a moving run of the ring, not
rows ``[0, size)``: rows that the frame ring pushes out get priority 0 (the
sum tree never returns them), and late priority updates of rows no longer
live are dropped instead of bringing them back.
"""
from __future__ import annotations

import numpy as np

from mpirl.replay.frames.uniform import FrameReplay
from mpirl.replay.prioritized import PrioritizedReplay
from mpirl.replay.sumtree import SumTree


class PrioritizedFrameReplay(PrioritizedReplay):
    """:class:`PrioritizedReplay`'s interface over a :class:`FrameReplay` (``stack``, ``frame_capacity``: its)."""

    def __init__(self, capacity: int, spec: dict, alpha: float = 0.6, eps: float = 1e-6, stack: int | None = None,
                 frame_capacity: int | None = None):
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0 (keeps every stored priority positive), got {eps}")
        self.buffer = FrameReplay(capacity, spec, stack=stack, frame_capacity=frame_capacity)
        self.tree = SumTree(capacity)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self._max_priority = 1.0

    @property
    def frames_per_transition(self) -> float:
        """See :attr:`FrameReplay.frames_per_transition`."""
        return self.buffer.frames_per_transition

    def add(self, batch: dict, priorities: np.ndarray | None = None) -> np.ndarray:
        """Insert a history batch (see :meth:`FrameReplay.add`); ``priorities``: raw |TD errors|, one per transition.

        ``None`` gives the new transitions the max priority seen so far.
        """
        n = self.buffer.validate_batch(batch)
        raw = None if priorities is None else self._raw(priorities, n)
        indices = self.buffer.add(batch)
        self.tree.update(self.buffer.dropped, 0.0)
        if raw is None:
            raw = np.full(indices.size, self._max_priority)
        self._store(indices, raw[n - indices.size:])
        return indices

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set priorities of rows ``indices`` from new TD errors; rows no longer live are skipped.

        A row overwritten by a newer transition since it was sampled gets the
        value (as in :class:`PrioritizedReplay`); one the frame ring evicted
        stays at 0.
        """
        indices = np.asarray(indices, dtype=np.int64).ravel()
        raw = self._raw(td_errors, indices.size)
        if indices.size and (indices.min() < 0 or indices.max() >= self.capacity):
            raise IndexError(f"replay row out of range [0, {self.capacity})")
        keep = self.buffer.live(indices)
        self._store(indices[keep], raw[keep])

    def state_dict(self) -> dict:
        """:meth:`FrameReplay.state_dict` plus ``priorities`` (of the written rows), ``max_priority``, ``alpha``."""
        d = self.buffer.state_dict()
        return self._with_priorities(d, len(d["refs"]))

    def load_state_dict(self, d: dict) -> None:
        """Restore memory and priorities from :meth:`state_dict` output."""
        self._check_alpha(d)
        pri = np.asarray(d["priorities"], dtype=np.float64)
        filled = len(np.asarray(d["refs"]))
        if pri.shape != (filled,):
            raise ValueError(f"replay state priorities have shape {pri.shape}, expected ({filled},)")
        tail, size = int(d["tail"]), int(d["head"]) - int(d["tail"])
        live = (np.arange(filled) - tail) % self.capacity < size
        if not (np.all(np.isfinite(pri)) and np.all(pri[live] > 0)):
            raise ValueError("replay state priorities of live rows must be finite and > 0")
        self.buffer.load_state_dict(d)
        leaves = np.zeros(self.capacity)
        leaves[:filled] = np.where(live, pri, 0.0)
        self.tree.set_all(leaves)
        self._max_priority = float(d["max_priority"])

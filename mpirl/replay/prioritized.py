"""Proportional prioritized replay (Schaul et al. 2016) as used by Ape-X (Horgan et al. 2018).

Item i is sampled with probability P(i) = p_i / sum_k p_k where the stored
priority is p_i = (|delta_i| + eps)^alpha. Transitions live in a
:class:`ReplayBuffer`, priorities in a :class:`SumTree` indexed by the same row.
"""
from __future__ import annotations

import numpy as np

from mpirl.replay.sumtree import SumTree
from mpirl.replay.uniform import ReplayBuffer


class PrioritizedReplay:
    """Ring replay with proportional prioritization, stratified sampling and IS weights."""

    def __init__(self, capacity: int, spec: dict, alpha: float = 0.6, eps: float = 1e-6):
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0 (keeps every stored priority positive), got {eps}")
        self.buffer = ReplayBuffer(capacity, spec)
        self.tree = SumTree(capacity)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self._max_priority = 1.0  # raw scale, |delta| + eps; new items get this ** alpha

    # -- sizes ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.buffer)

    @property
    def capacity(self) -> int:
        """Maximum number of transitions held."""
        return self.buffer.capacity

    @property
    def spec(self) -> dict:
        """Field name -> (shape, dtype), as in :class:`ReplayBuffer`."""
        return self.buffer.spec

    @property
    def max_priority(self) -> float:
        """Largest raw priority |delta| + eps seen so far (1.0 before any)."""
        return self._max_priority

    @property
    def nbytes(self) -> int:
        """Bytes of transition storage plus the sum tree."""
        return self.buffer.nbytes + self.tree.nbytes

    @property
    def bytes_per_transition(self) -> float:
        """Storage bytes of one transition plus its share of the sum tree (2*P/capacity doubles)."""
        return self.buffer.bytes_per_transition + self.tree.nbytes / self.capacity

    # -- priorities ----------------------------------------------------------
    def _raw(self, td_errors, n: int) -> np.ndarray:
        raw = np.abs(np.asarray(td_errors, dtype=np.float64)).ravel() + self.eps
        if raw.shape != (n,):
            raise ValueError(f"expected {n} priorities, got {raw.size}")
        if not np.all(np.isfinite(raw)):
            raise ValueError("priorities / TD errors must be finite")
        return raw

    def _store(self, indices: np.ndarray, raw: np.ndarray) -> None:
        if raw.size:
            self._max_priority = max(self._max_priority, float(raw.max()))
        self.tree.update(indices, raw ** self.alpha)

    def add(self, batch: dict, priorities: np.ndarray | None = None) -> np.ndarray:
        """Insert n transitions; return the rows written (see :meth:`ReplayBuffer.add`).

        ``priorities`` are raw |TD errors| (one per transition; stored as
        (|p| + eps)^alpha). ``None`` gives each the max priority seen so far,
        so new experience is sampled at least once soon (Schaul et al.).
        """
        n = self.buffer.validate_batch(batch)
        raw = None if priorities is None else self._raw(priorities, n)  # validate before writing
        indices = self.buffer.add(batch)
        if raw is None:
            raw = np.full(indices.size, self._max_priority)
        self._store(indices, raw[n - indices.size:])  # n > capacity keeps only the tail
        return indices

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set priorities of rows ``indices`` from new TD errors; repeated rows: last one wins.

        Rows overwritten since they were sampled just get the new value, as
        in Ape-X, where the learner's updates may arrive late.
        """
        indices = np.asarray(indices, dtype=np.int64).ravel()
        raw = self._raw(td_errors, indices.size)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"replay row out of the filled range [0, {len(self)})")
        self._store(indices, raw)

    def priorities(self, indices: np.ndarray) -> np.ndarray:
        """Stored priorities p_i = (|delta_i| + eps)^alpha of rows ``indices``."""
        return self.tree.get(indices)

    # -- sampling ------------------------------------------------------------
    def sample(self, batch_size: int, beta: float, rng: np.random.Generator):
        """Stratified proportional sample: ``(indices, {field: array}, weights)``.

        [0, total) is split into ``batch_size`` equal segments with one
        uniform draw in each, which lowers the variance of the batch
        composition versus i.i.d. draws. Importance weights are
        w_i = (N * P(i))^-beta with N = len(self), divided by the largest
        w in *this batch* (as in Ape-X) rather than over the whole memory, so
        weights lie in (0, 1] and no min-priority tree is needed. Weights are
        float32, ready for a loss.
        """
        n = len(self)
        if n == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        total = self.tree.total
        values = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
        indices = self.tree.find(values)
        probs = self.tree.get(indices) / total
        weights = (n * probs) ** -float(beta)
        weights /= weights.max()
        return indices, self.buffer.get(indices), weights.astype(np.float32)

    # -- checkpoints ---------------------------------------------------------
    def state_dict(self) -> dict:
        """Buffer arrays plus ``priorities`` (stored p_i of filled rows), ``max_priority``, ``alpha``."""
        return self._with_priorities(self.buffer.state_dict(), len(self))

    def _with_priorities(self, d: dict, rows: int) -> dict:
        """``d`` plus ``priorities`` (the stored p_i of the first ``rows`` rows), ``max_priority``, ``alpha``."""
        d["priorities"] = self.tree.leaves()[:rows]
        d["max_priority"] = np.array(self._max_priority, dtype=np.float64)
        d["alpha"] = np.array(self.alpha, dtype=np.float64)
        return d

    def _check_alpha(self, d: dict) -> None:
        # Stored priorities carry the old exponent; mixing them would skew P(i).
        if float(d["alpha"]) != self.alpha:
            raise ValueError(f"replay state has alpha={float(d['alpha'])}, this replay uses {self.alpha}")

    def load_state_dict(self, d: dict) -> None:
        """Restore transitions, insert position and priorities from :meth:`state_dict` output."""
        self._check_alpha(d)
        size = int(d["size"])
        pri = np.asarray(d["priorities"], dtype=np.float64)
        if pri.shape not in ((size,), (self.capacity,)):
            raise ValueError(f"replay state priorities have shape {pri.shape}, expected ({size},)")
        if size and not (np.all(np.isfinite(pri[:size])) and pri[:size].min() > 0):
            raise ValueError("replay state priorities of filled rows must be finite and > 0")
        self.buffer.load_state_dict(d)
        leaves = np.zeros(self.capacity)
        leaves[:size] = pri[:size]
        self.tree.set_all(leaves)
        self._max_priority = float(d["max_priority"])

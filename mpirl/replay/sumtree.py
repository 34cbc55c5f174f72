"""Array-backed sum tree for proportional prioritized replay, vectorised over batches.

Layout: ``tree`` has 2*P float64 slots, P = next power of two >= capacity.
Node 1 is the root, node j has children 2j and 2j+1, and leaf i (item i)
lives at P + i. Slot 0 is unused. Leaves >= capacity stay at 0 forever.
"""
from __future__ import annotations

import numpy as np


class SumTree:
    """Priorities of ``capacity`` items with O(log P) batched update and prefix-sum search."""

    def __init__(self, capacity: int):
        capacity = int(capacity)
        if capacity < 1:
            raise ValueError(f"sum tree capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._p = 1 << (capacity - 1).bit_length()  # next power of two >= capacity
        self._depth = self._p.bit_length() - 1  # edges from root to a leaf
        self._tree = np.zeros(2 * self._p, dtype=np.float64)

    @property
    def capacity(self) -> int:
        """Number of items (leaves in use)."""
        return self._capacity

    @property
    def nbytes(self) -> int:
        """Bytes of the tree array."""
        return self._tree.nbytes

    @property
    def total(self) -> float:
        """Sum of all priorities (the root)."""
        return float(self._tree[1])

    def leaves(self) -> np.ndarray:
        """A copy of all ``capacity`` priorities."""
        return self._tree[self._p:self._p + self._capacity].copy()

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Priorities of items ``indices``."""
        return self._tree[self._p + self._check_indices(indices)]

    def _check_indices(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self._capacity):
            raise IndexError(f"sum tree index out of range [0, {self._capacity})")
        return indices

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set item priorities (finite, >= 0); for repeated indices the last write wins."""
        indices = self._check_indices(indices).ravel()
        priorities = np.broadcast_to(np.asarray(priorities, dtype=np.float64), indices.shape)
        if priorities.size and not (np.all(np.isfinite(priorities)) and priorities.min() >= 0):
            raise ValueError("priorities must be finite and >= 0")
        if indices.size == 0:
            return
        # numpy does not promise which duplicate wins a fancy assignment, so
        # keep the last occurrence explicitly: np.unique on the reversed array
        # reports first occurrences there, i.e. last ones in the original.
        uniq, first_rev = np.unique(indices[::-1], return_index=True)
        nodes = uniq + self._p
        tree = self._tree
        tree[nodes] = priorities[::-1][first_rev]
        # Recompute (not add deltas to) each ancestor from its two children, so
        # the tree never drifts from the exact sums of its leaves. Nodes stay
        # sorted, so siblings give adjacent duplicates that we drop.
        for _ in range(self._depth):
            nodes = nodes >> 1
            if nodes.size > 1:
                nodes = nodes[np.concatenate(([True], nodes[1:] != nodes[:-1]))]
            tree[nodes] = tree[2 * nodes] + tree[2 * nodes + 1]

    def set_all(self, priorities: np.ndarray) -> None:
        """Replace all ``capacity`` priorities at once and rebuild the tree bottom-up."""
        priorities = np.asarray(priorities, dtype=np.float64)
        if priorities.shape != (self._capacity,):
            raise ValueError(f"expected {self._capacity} priorities, got shape {priorities.shape}")
        if not (np.all(np.isfinite(priorities)) and (priorities.size == 0 or priorities.min() >= 0)):
            raise ValueError("priorities must be finite and >= 0")
        tree = self._tree
        tree[:] = 0.0
        tree[self._p:self._p + self._capacity] = priorities
        lo = self._p
        while lo > 1:
            lo //= 2
            tree[lo:2 * lo] = tree[2 * lo:4 * lo:2] + tree[2 * lo + 1:4 * lo:2]

    def find(self, values: np.ndarray) -> np.ndarray:
        """Item index i for each value v in [0, total): the leaf whose prefix-sum interval holds v.

        Equivalent to ``np.searchsorted(np.cumsum(leaves), v, side="right")``
        up to round-off, but never returns a zero-priority (or unused) leaf:
        the descent only enters subtrees with positive sum, so values at or
        beyond ``total`` (or pushed there by round-off) land on the last
        positive leaf instead of running off the end.
        """
        tree = self._tree
        if not tree[1] > 0:
            raise ValueError("cannot search a sum tree whose total priority is 0")
        values = np.array(values, dtype=np.float64, ndmin=1)  # copy: modified below
        if not np.all(np.isfinite(values)):
            raise ValueError("sum tree search values must be finite")
        idx = np.ones(values.shape, dtype=np.int64)
        for _ in range(self._depth):
            left_idx = 2 * idx
            left = tree[left_idx]
            right = tree[left_idx + 1]
            # Go right when v passes the left sum or the left side is empty,
            # but never into an empty right side: a positive node always has
            # a positive child, so the walk ends on a positive leaf.
            go_right = ((values >= left) | (left <= 0.0)) & (right > 0.0)
            values -= np.where(go_right, left, 0.0)
            idx = left_idx + go_right
        return idx - self._p

"""The deterministic gossip schedule of ``gossip_a2c``: which peer each rank averages with at round k.

Every round is a matching (each rank has at most one peer, and peer(peer(r)) =
r), and paired ranks replace their parameters by the pair's mean. The mixing
matrix of a round, ``W = I - sum_pairs (e_i - e_j)(e_i - e_j)^T / 2``, is
symmetric and doubly stochastic, so the average over all ranks is preserved.

- N a power of two: hypercube (one-peer exponential graph), peer ``r XOR 2^(k mod log2 N)``.
  After log2 N consecutive rounds every rank holds the exact average.
- Any other N: round-robin tournament (circle method) over N ranks (N + 1 with a
  bye when N is odd): over one period of N - 1 (or N) rounds every pair meets
  once, so the union of the rounds' graphs is the complete graph.

Either way the graphs are connected over every period, the assumption under
which gossip averaging contracts the ranks towards consensus.
"""
from __future__ import annotations

import numpy as np


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def schedule_period(size: int) -> int:
    """Rounds after which the schedule repeats (every pair met, or exact averaging for powers of two)."""
    if size <= 1:
        return 1
    if _is_power_of_two(size):
        return size.bit_length() - 1
    return size if size % 2 else size - 1


def gossip_peer(rank: int, size: int, k: int) -> int | None:
    """The rank that ``rank`` averages with at round ``k``, or None if it sits this round out."""
    if not 0 <= rank < size:
        raise ValueError(f"rank {rank} is not in 0..{size - 1}")
    if size <= 1:
        return None
    if _is_power_of_two(size):
        return rank ^ (1 << (k % schedule_period(size)))
    # Circle method on M (even) seats: seat M-1 stays, the others rotate; seat i faces seat (2r - i) mod (M-1).
    m = size + size % 2
    r = k % (m - 1)

    def partner(i):
        if i == m - 1:
            return r
        if i == r:
            return m - 1
        return (2 * r - i) % (m - 1)

    peer = partner(rank)
    return None if peer >= size else peer  # the dummy seat of an odd N: a bye


def mixing_matrix(size: int, k: int) -> np.ndarray:
    """Round ``k``'s mixing matrix ``W`` (``theta_new = W @ theta``): pairs average, others keep theirs."""
    w = np.zeros((size, size))
    for r in range(size):
        p = gossip_peer(r, size, k)
        if p is None:
            w[r, r] = 1.0
        else:
            w[r, r] = w[r, p] = 0.5
    return w

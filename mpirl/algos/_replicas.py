"""Bitwise replica checks of the synchronous data-parallel algorithms (a2c, ppo): one CRC per rank, one Allreduce.

Each rank puts the CRC-32 of its flat parameter vector (as two 16-bit halves,
exact in a float32 sum) into a reduction it makes anyway; every rank then
checks that the sum equals ``size`` times its own fingerprint.
"""
from __future__ import annotations

import zlib

import numpy as np


def param_fingerprint(flat: np.ndarray) -> np.ndarray:
    """The CRC-32 of a parameter vector's bytes as two 16-bit halves (float32-exact in a sum over ranks)."""
    crc = zlib.crc32(np.ascontiguousarray(flat).view(np.uint8))
    return np.array([crc >> 16, crc & 0xFFFF], np.float32)


def replicas_agree(summed: np.ndarray, mine: np.ndarray, size: int) -> bool:
    """True if every rank holds ``mine``, given the sum of every rank's fingerprint.

    If each rank finds ``sum == size * mine``, all fingerprints equal their
    mean, so they are all equal: one Allreduce checks every pair of ranks.
    """
    return bool(np.array_equal(np.asarray(summed, np.float64), size * np.asarray(mine, np.float64)))


def check_replicas(summed: np.ndarray, flat: np.ndarray, size: int, what: str) -> None:
    """Raise (which aborts the job) unless every rank's fingerprint equals this rank's; ``what`` names the moment."""
    if not replicas_agree(summed, param_fingerprint(flat), size):
        raise RuntimeError(f"replicas differ {what}")


def check_replicas_at_end(world, flat: np.ndarray, what: str) -> None:
    """The last update's result, checked with one more small Allreduce, so that every update was verified."""
    last = param_fingerprint(flat).astype(np.float64)
    world.allreduce(last)
    check_replicas(last, flat, world.size, what)

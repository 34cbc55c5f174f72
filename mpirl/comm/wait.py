"""Waiting on MPI requests without burning a core.

MPICH busy-polls inside blocking calls, so a rank blocked in ``Recv`` or
``Bcast`` takes a whole core away from the ranks doing useful work when ranks
outnumber cores. Every wait in mpirl goes through :func:`wait_all`: it tests the
requests, spins only for a short window (cheap when the peer is about to
answer, which keeps small-message latency near raw MPI), then sleeps with a
capped exponential backoff.
"""
from __future__ import annotations

import os
import time

# Tuned with `mpirl bench comm` at -n 2 (MPICH 5, shared memory). While a rank
# sleeps its part of a collective does not progress, so every protocol step
# that lands in a sleep adds up to that sleep's length. The 5 ms spin covers
# every operation up to 16 MiB and most of a 64 MiB bcast (~6 ms); past it,
# growth 1.1 keeps each sleep under ~10% of the time already waited, and the
# 2 ms cap bounds the overshoot of the longest (64 MiB allreduce, ~45 ms).
# That keeps the layer within ~5% of blocking MPI from 1 MiB up, where
# 200 us / 1.25 / 5 ms was up to 1.8x slower (a 2 ms spin: ~1.25x on a 64 MiB
# bcast). Each wake-up costs ~30-60 us of CPU (more on a loaded host), so a
# rank waiting 2 s uses ~2% of a core; a 1 ms cap would cost ~3%, 0.5 ms ~4%.
SPIN_S = float(os.environ.get("MPIRL_WAIT_SPIN_US", "5000")) * 1e-6
FIRST_SLEEP_S = 20e-6
MAX_SLEEP_S = float(os.environ.get("MPIRL_WAIT_MAX_SLEEP_MS", "2")) * 1e-3
GROWTH = 1.1


def poll_until(test, timeout_s: float | None = None) -> bool:
    """Call ``test()`` until it returns True; False if ``timeout_s`` passes first.

    Spins for ``SPIN_S``, then sleeps with a capped exponential backoff, so a
    long wait costs one poll every ``MAX_SLEEP_S``.
    """
    if test():
        return True
    start = time.perf_counter()
    delay = FIRST_SLEEP_S
    while True:
        if test():
            return True
        elapsed = time.perf_counter() - start
        if timeout_s is not None and elapsed > timeout_s:
            return False
        if elapsed < SPIN_S:
            os.sched_yield()  # oversubscribed: let a rank with work run on this core
            continue
        time.sleep(delay)
        delay = min(delay * GROWTH, MAX_SLEEP_S)


def wait_all(requests, timeout_s: float | None = None) -> bool:
    """Wait until every request completes; return False on timeout.

    ``requests`` is a list of ``MPI.Request`` (or one request), polled with
    ``Testall`` instead of the busy-polling blocking wait.
    """
    from mpi4py import MPI  # only comm/ imports mpi4py

    if not isinstance(requests, (list, tuple)):
        requests = [requests]
    return poll_until(lambda: MPI.Request.Testall(requests), timeout_s)


def wait(request, timeout_s: float | None = None) -> bool:
    """Wait for one request with backoff; return False on timeout."""
    return wait_all([request], timeout_s)

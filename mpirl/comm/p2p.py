"""Nonblocking point-to-point messaging with preallocated buffers.

A :class:`Sender` and a :class:`Receiver` carry one message kind (a
:class:`MessageSpec`) under one tag (:mod:`mpirl.comm.tags`). Senders own a small pool of buffers and never wait for the receiver while
a free buffer remains; receivers keep receives posted and poll them. A
zero-length message on the shutdown tag tells a peer to stop.
"""
from __future__ import annotations

import time

import numpy as np

from mpirl.comm.buffers import Message, MessageSpec
from mpirl.comm.tags import TAGS
from mpirl.comm.wait import poll_until, wait, wait_all
from mpirl.comm.watch import CHECK_EVERY_S, SilenceClock, silent_message
from mpirl.errors import SilentRankError

SHUTDOWN_TAG = TAGS["shutdown"]
_EMPTY = np.zeros(1, dtype=np.uint8)


class Sender:
    """Sends messages of one spec to any rank from a pool of ``slots`` buffers.

    With ``synchronous`` a send completes only once the receiver has matched it
    (``Issend``). Plain ``Isend`` of a message under MPI's eager limit
    completes at once, however far behind the receiver is, so the pool would
    not hold a fast sender back and the receiver's unexpected-message queue
    could grow without bound.
    """

    def __init__(self, world, spec: MessageSpec, tag: int, slots: int = 2, synchronous: bool = False):
        self.world, self.spec, self.tag = world, spec, tag
        self.synchronous = synchronous
        self.buffers = [spec.allocate() for _ in range(slots)]
        self.requests = [None] * slots

    def free_slot(self):
        """Index of a buffer whose last send completed, or None (never blocks)."""
        for i, req in enumerate(self.requests):
            if req is None or req.Test():
                self.requests[i] = None
                return i
        return None

    def acquire(self, timeout_s=None) -> int | None:
        """Wait (with backoff) for a free buffer slot; returns its index or None on timeout."""
        found = []
        ok = poll_until(lambda: found.append(self.free_slot()) or found[-1] is not None, timeout_s)
        return found[-1] if ok else None

    def buffer(self, slot: int) -> Message:
        """The message buffer of ``slot``, to fill before :meth:`send`."""
        return self.buffers[slot]

    def send(self, slot: int, dest: int) -> None:
        """Start a nonblocking send of ``slot``'s buffer to ``dest``."""
        start = self.world.comm.Issend if self.synchronous else self.world.comm.Isend
        self.requests[slot] = start(self.buffers[slot].buffer, dest=dest, tag=self.tag)

    def flush(self, timeout_s=None) -> bool:
        """Wait until every send in flight has completed."""
        pending = [r for r in self.requests if r is not None]
        ok = wait_all(pending, timeout_s) if pending else True
        if ok:
            self.requests = [None] * len(self.requests)
        return ok


class Receiver:
    """Keeps nonblocking receives posted from ``sources`` for one message spec.

    On rank 0, receiving from actors, it watches them (``watch`` None: when
    ``world.actor_timeout_s`` is set): a poll raises
    :class:`~mpirl.errors.SilentRankError` naming the actors that have sent
    nothing for that long while rank 0 was polling (see :mod:`mpirl.comm.watch`).
    """

    def __init__(self, world, spec: MessageSpec, tag: int, sources, watch: bool | None = None):
        from mpi4py import MPI

        self.MPI = MPI
        self.world, self.spec, self.tag = world, spec, tag
        self.sources = list(sources)
        # Two buffers per source: one posted, one handed to the caller.
        self.buffers = [spec.allocate() for _ in self.sources]
        self.spares = [spec.allocate() for _ in self.sources]
        self.requests = [self._post(i) for i in range(len(self.sources))]
        self._first = 0  # where the next poll starts looking: sources are served in turn
        timeout = float(getattr(world, "actor_timeout_s", 0.0) or 0.0)
        if watch is None:
            watch = world.is_learner and 0 not in self.sources
        self.clock = SilenceClock(self.sources, timeout, time.monotonic()) if watch and timeout > 0 else None
        self._next_check = 0.0

    def _post(self, i):
        return self.world.comm.Irecv(self.buffers[i].buffer, source=self.sources[i], tag=self.tag)

    def poll(self):
        """Return ``(source, message)`` for one completed receive, or None; never blocks.

        The returned message stays valid until the next message from the same
        source is returned (its buffer is then posted again): copy what you keep.
        """
        # MPICH's Testany progresses the network only now and then; an Iprobe on any source makes a full
        # progress pass. Without it, messages from another node over TCP crawl while same-node ones
        # flow: Ape-X actors on a second node delivered 0-2.6K of 40K steps (docs/cluster.md).
        self.world.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=self.tag)
        # Testany reports the lowest completed index: always starting at 0 would let the lowest
        # ranks starve the others whenever several are ready (IMPALA at -n 5: 196K vs 1K steps).
        n, first = len(self.requests), self._first
        # Only build a rotated list when the turn is not at the start (never for one source).
        idx, done = self.MPI.Request.Testany(self.requests[first:] + self.requests[:first] if first else self.requests)
        if not done or idx == self.MPI.UNDEFINED:
            if self.clock is not None:
                self._watch(None)
            return None
        idx = (idx + first) % n
        self._first = (idx + 1) % n
        if self.clock is not None:
            self._watch(self.sources[idx])
        return self._complete(idx)

    def _watch(self, source) -> None:
        now = time.monotonic()
        self.clock.tick(now)
        if source is not None:
            self.clock.heard_from(source)
            return
        if now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY_S
        silent = self.clock.silent()
        # A message that has arrived but not been taken yet is no silence (Get_status does not free it).
        silent = {s: q for s, q in silent.items() if not self.requests[self.sources.index(s)].Get_status()}
        if silent:
            longest = max(silent.values())
            raise SilentRankError(silent_message(silent, self.clock.timeout_s,
                                                 f"no message for {longest:.1f} s while rank {self.world.rank} "
                                                 f"waited for it"))

    def stop_watching(self, source) -> None:
        """``source`` has finished sending (its part of a shutdown protocol): its silence is no fault."""
        if self.clock is not None:
            self.clock.forget(source)

    def _complete(self, idx):
        filled = self.buffers[idx]
        self.buffers[idx], self.spares[idx] = self.spares[idx], filled
        self.requests[idx] = self._post(idx)
        return self.sources[idx], filled

    def recv(self, timeout_s=None):
        """Wait (with backoff) for the next message from any source; None on timeout."""
        got = []
        ok = poll_until(lambda: got.append(self.poll()) or got[-1] is not None, timeout_s)
        return got[-1] if ok else None

    def close(self) -> None:
        """Cancel the receives still posted (and stop watching the sources)."""
        for req in self.requests:
            if req is not None:
                req.Cancel()
                req.Wait()  # completes at once after Cancel
        self.requests = []
        self.clock = None


def send_shutdown(world, dest: int) -> None:
    """Tell ``dest`` to stop (a zero-length message on the shutdown tag)."""
    wait(world.comm.Isend([_EMPTY, 0, _mpi_byte()], dest=dest, tag=SHUTDOWN_TAG))


def shutdown_requested(world, source: int | None = None) -> bool:
    """True (and the message consumed) if a shutdown message has arrived; never blocks."""
    from mpi4py import MPI

    src = MPI.ANY_SOURCE if source is None else source
    if world.comm.Iprobe(source=src, tag=SHUTDOWN_TAG):
        status = MPI.Status()
        world.comm.Recv([np.zeros(1, np.uint8), 0, MPI.BYTE], source=src, tag=SHUTDOWN_TAG, status=status)
        return True
    return False


def deliver_all(world, senders: dict, what: str) -> None:
    """Rank 0: wait until every rank's Sender (``senders``: rank -> Sender) has completed its sends.

    The wait has the deadline ``fault.actor_timeout_s`` (``World.watch_actors``;
    0: none): a rank that never takes its message (stopped or hung) is named in
    a :class:`~mpirl.errors.SilentRankError` instead of hanging the job.
    """
    timeout = world.actor_timeout_s or None
    if poll_until(lambda: all(s.free_slot() is not None for s in senders.values()), timeout):
        return
    late = [r for r, s in senders.items() if s.free_slot() is None]
    raise SilentRankError(silent_message(late, world.actor_timeout_s,
                                         f"rank 0 waited {timeout:g} s for {what} to be taken"))


def _mpi_byte():
    from mpi4py import MPI

    return MPI.BYTE

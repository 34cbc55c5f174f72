"""The MPI world: rank roles, collectives on flat buffers, abort on any exception.

This package is the only place in mpirl that imports mpi4py. Which ranks learn
and which act is the :class:`~mpirl.comm.layout.Layout`'s to say (today rank 0
learns or serves parameters and ranks 1..N-1 act). Every wait goes
through :mod:`mpirl.comm.wait` so a waiting rank does not burn a core.
"""
from __future__ import annotations

import json
import sys
import time
import traceback

import numpy as np

from mpirl.comm import watch
from mpirl.comm.layout import Layout
from mpirl.comm.wait import poll_until, wait_all
from mpirl.errors import SilentRankError

LEARNER = 0


def _mpi():
    from mpi4py import MPI

    return MPI


class World:
    """The rank layout of one job and the collectives mpirl uses.

    Collectives are the nonblocking MPI calls (Ibcast, Igather(v), Iallreduce)
    on contiguous numpy buffers, completed with a backoff wait. With
    :meth:`watch_actors`, rank 0's waits have a deadline (see :mod:`mpirl.comm.watch`).
    """

    def __init__(self, comm=None):
        MPI = _mpi()
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.layout = Layout(self.size)
        self.actor_timeout_s = 0.0
        self._everyone_seen = False  # a collective with every rank has completed: start-up is over
        self._roll_calls = 0
        self._next_answer_check = 0.0
        self._answers = []  # this rank's answers to roll calls still in flight (request, buffer)

    # ---- fault detection --------------------------------------------------
    def watch_actors(self, timeout_s: float) -> None:
        """Give rank 0's waits for other ranks a deadline of ``timeout_s`` (0: none); call on every rank.

        Past it, rank 0 raises :class:`~mpirl.errors.SilentRankError` naming
        the ranks that sent nothing (Receivers) or did not answer a roll call
        (collectives, pairwise exchanges); the other ranks answer roll calls
        while they wait.
        """
        self.actor_timeout_s = float(timeout_s)

    # ---- roles -----------------------------------------------------------
    @property
    def is_learner(self) -> bool:
        """True on a learner rank (rank 0 today: the learner / parameter server)."""
        return self.layout.is_learner(self.rank)

    @property
    def actor_ranks(self) -> list:
        """The ranks that act (1..size-1 with one learner)."""
        return self.layout.actor_ranks

    @property
    def num_actors(self) -> int:
        """How many actor ranks there are."""
        return len(self.layout.actor_ranks)

    @property
    def learner(self) -> int:
        """The learner this rank talks to: itself on a learner, its ``layout.learner_of`` on an actor."""
        return self.rank if self.is_learner else self.layout.learner_of(self.rank)

    def split(self, color: int, key: int | None = None) -> "World":
        """A sub-world of the ranks that pass the same ``color`` (MPI ``Comm_Split``), e.g. the learner group.

        It keeps the nonblocking waits, the abort hook and (with this world's
        deadline) the silent-rank detection; ranks are numbered by ``key``
        (default: this rank), and its layout has one learner, its rank 0.
        Collective: every rank of this world calls it.
        """
        comm = self.comm.Split(int(color), self.rank if key is None else int(key))
        sub = World(comm)
        sub.watch_actors(self.actor_timeout_s)
        return sub

    def node_rank(self) -> int:
        """This rank's index among the ranks on its node (MPI shared-memory split); collective, at start-up."""
        MPI = _mpi()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, self.rank)
        try:
            return node.Get_rank()
        finally:
            node.Free()

    # ---- collectives on buffers -----------------------------------------
    def barrier(self) -> None:
        """Synchronise all ranks without busy-polling."""
        self._wait([self.comm.Ibarrier()], "a barrier", everyone=True)

    def bcast(self, buf: np.ndarray, root: int = LEARNER) -> np.ndarray:
        """Broadcast a contiguous buffer in place from ``root``."""
        self._wait([self.comm.Ibcast(_contig(buf), root=root)], "a broadcast")
        return buf

    def gather(self, sendbuf: np.ndarray, recvbuf: np.ndarray | None = None, root: int = LEARNER):
        """Gather equal-shaped buffers to ``root``; returns ``[size, *shape]`` there, None elsewhere."""
        _contig(sendbuf)
        if self.rank == root and recvbuf is None:
            recvbuf = np.empty((self.size,) + sendbuf.shape, dtype=sendbuf.dtype)
        self._wait([self.comm.Igather(sendbuf, recvbuf if self.rank == root else None, root=root)], "a gather",
                   everyone=root == self.rank)
        return recvbuf if self.rank == root else None

    def gatherv(self, sendbuf: np.ndarray, root: int = LEARNER):
        """Gather 1-D buffers of different lengths; returns a list of arrays on ``root``."""
        _contig(sendbuf)
        counts = self.gather(np.array([sendbuf.size], dtype=np.int64), root=root)
        if self.rank == root:
            counts = counts.reshape(-1)
            recv = np.empty(int(counts.sum()), dtype=sendbuf.dtype)
            displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self._wait([self.comm.Igatherv(sendbuf, [recv, (counts, displs)], root=root)], "a gather",
                       everyone=True)
            return [recv[d:d + c] for d, c in zip(displs, counts)]
        self._wait([self.comm.Igatherv(sendbuf, None, root=root)], "a gather")
        return None

    def allreduce(self, buf: np.ndarray, op: str = "sum") -> np.ndarray:
        """Reduce a contiguous buffer in place across all ranks (sum, max or min)."""
        MPI = _mpi()
        mpi_op = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        self._wait([self.comm.Iallreduce(MPI.IN_PLACE, _contig(buf), op=mpi_op)], "an allreduce", everyone=True)
        return buf

    def sendrecv(self, sendbuf: np.ndarray, recvbuf: np.ndarray, peer: int, tag: int = 0) -> np.ndarray:
        """Exchange buffers with ``peer`` (nonblocking Isend + Irecv, one backoff wait); returns ``recvbuf``.

        Only the two ranks of the pair wait for each other: no global synchronisation.
        """
        _contig(sendbuf)
        _contig(recvbuf)
        reqs = [self.comm.Irecv(recvbuf, source=peer, tag=tag), self.comm.Isend(sendbuf, dest=peer, tag=tag)]
        self._wait(reqs, f"an exchange with rank {peer}")
        return recvbuf

    # ---- rare control messages (JSON, never pickle) ----------------------
    def bcast_json(self, obj=None, root: int = LEARNER):
        """Broadcast a JSON-serialisable object from ``root`` (for rare control messages)."""
        data = json.dumps(obj).encode() if self.rank == root else b""
        n = np.array([len(data)], dtype=np.int64)
        self.bcast(n, root)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == root else np.empty(int(n[0]), np.uint8)
        self.bcast(buf, root)
        return json.loads(buf.tobytes().decode())

    def gather_json(self, obj, root: int = LEARNER):
        """Gather one JSON-serialisable object per rank to ``root`` (a list there, None elsewhere)."""
        parts = self.gatherv(np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8).copy(), root)
        if parts is None:
            return None
        return [json.loads(p.tobytes().decode()) for p in parts]

    def gather_arrays(self, arrays: dict, root: int = LEARNER):
        """Gather every rank's named numpy arrays to ``root``: a list of dicts there, None elsewhere.

        Ranks may hold different names, shapes and dtypes: each rank's layout
        travels as a small JSON control message and its data in one Gatherv of
        one contiguous buffer.
        """
        from mpirl.comm.buffers import MessageSpec

        def spec_of(layout: dict) -> MessageSpec:
            return MessageSpec({k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in sorted(layout.items())})

        layout = {k: (list(np.shape(v)), np.asarray(v).dtype.str) for k, v in arrays.items()}
        msg = spec_of(layout).allocate() if layout else None
        for k, v in arrays.items():
            msg[k] = v
        layouts = self.gather_json(layout, root)
        parts = self.gatherv(msg.buffer if msg is not None else np.zeros(0, np.uint8), root)
        if parts is None:
            return None
        out = []
        for part, lay in zip(parts, layouts):
            got = spec_of(lay).view(part) if lay else {}
            out.append({k: np.array(got[k]) for k in lay})
        return out

    # ---- failure --------------------------------------------------------
    def abort(self, code: int = 1) -> None:
        """Kill every rank of the job now (MPI_Abort), after the launcher has forwarded our output."""
        _flush_for_abort()
        _mpi().COMM_WORLD.Abort(code)

    def wait_all(self, requests, timeout_s=None) -> bool:
        """Wait for nonblocking requests with backoff (see :mod:`mpirl.comm.wait`)."""
        return wait_all(requests, timeout_s)

    # ---- waits with a deadline (rank 0) and roll calls ------------------
    def _wait(self, requests, what: str, everyone: bool = False) -> None:
        # ``everyone``: completing it here means every rank has taken part (start-up is over).
        MPI = _mpi()
        timeout = self.actor_timeout_s
        if timeout <= 0:
            wait_all(requests)
            return
        if not self.is_learner:
            poll_until(lambda: self._answer_roll_call() or MPI.Request.Testall(requests))
            return
        limit = timeout if self._everyone_seen else max(timeout, watch.STARTUP_GRACE_S)
        waited = 0.0
        while True:
            start = time.monotonic()
            if wait_all(requests, limit):
                break
            silent = self._roll_call(requests)
            waited += time.monotonic() - start
            if silent is None:  # it completed during the roll call
                break
            if silent:
                raise SilentRankError(watch.silent_message(
                    silent, timeout, f"no answer after rank {self.rank} waited {waited:.1f} s in {what}"))
            limit = timeout  # every rank answered: someone is slow but alive, keep waiting
        if everyone:
            self._everyone_seen = True

    def _roll_call(self, requests):
        """Ask every other rank to answer; the sorted ranks that did not within the grace, None if
        ``requests`` completed meanwhile."""
        MPI = _mpi()
        self._roll_calls += 1
        call_id = self._roll_calls
        call = np.array([call_id], np.int64)
        sends = [self.comm.Isend(call, dest=r, tag=watch.ROLL_CALL_TAG) for r in range(self.size) if r != self.rank]
        answer = np.zeros(2, np.int64)  # (call id, rank)
        answered = set()
        pending = [self.comm.Irecv(answer, source=MPI.ANY_SOURCE, tag=watch.ROLL_ANSWER_TAG)]

        def take():
            if answer[0] == call_id:  # answers to an earlier call may arrive late: ignore them
                answered.add(int(answer[1]))

        def test():
            if MPI.Request.Testall(requests):
                return True
            while pending[0].Test():
                take()
                pending[0] = self.comm.Irecv(answer, source=MPI.ANY_SOURCE, tag=watch.ROLL_ANSWER_TAG)
            return len(answered) == self.size - 1

        poll_until(test, watch.ROLL_CALL_GRACE_S)
        pending[0].Cancel()
        status = MPI.Status()
        pending[0].Wait(status)  # completes at once after Cancel
        if not status.Is_cancelled():
            take()
        wait_all(sends, 1.0)  # 8 bytes each: sent eagerly, complete at once
        if MPI.Request.Testall(requests):
            return None
        return sorted(set(range(self.size)) - {self.rank} - answered)

    def _answer_roll_call(self) -> None:
        """While waiting: answer rank 0's roll calls (checked every ``watch.ANSWER_EVERY_S``)."""
        now = time.monotonic()
        if now < self._next_answer_check:
            return None
        self._next_answer_check = now + watch.ANSWER_EVERY_S
        self._answers = [(r, b) for r, b in self._answers if not r.Test()]
        while self.comm.Iprobe(source=LEARNER, tag=watch.ROLL_CALL_TAG):
            call = np.zeros(1, np.int64)
            self.comm.Recv(call, source=LEARNER, tag=watch.ROLL_CALL_TAG)  # has arrived: returns at once
            answer = np.array([call[0], self.rank], np.int64)
            self._answers.append((self.comm.Isend(answer, dest=LEARNER, tag=watch.ROLL_ANSWER_TAG), answer))
        return None


def _contig(buf: np.ndarray) -> np.ndarray:
    if not isinstance(buf, np.ndarray) or not buf.flags.c_contiguous:
        raise TypeError("MPI buffers must be C-contiguous numpy arrays")
    return buf


_HOOK_INSTALLED = False


def _flush_for_abort() -> None:
    # Hydra relays a rank's output through a pipe and its proxy; an abort that
    # follows at once can kill the job before the traceback is relayed.
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(0.3)


def install_abort_on_exception() -> None:
    """Make any uncaught exception on any rank abort the whole job.

    Without this, one rank dying leaves the others blocked in a collective
    forever (and mpi4py's automatic MPI_Finalize at exit can deadlock). The
    traceback is printed once, each line prefixed with the rank.
    """
    global _HOOK_INSTALLED
    if _HOOK_INSTALLED:
        return
    MPI = _mpi()
    rank = MPI.COMM_WORLD.Get_rank()

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            prefix = f"[rank {rank}] "
            sys.stderr.write(prefix + "interrupted; aborting the job\n")
        else:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            prefix = f"[rank {rank}] "
            sys.stderr.write("".join(prefix + line + "\n" for line in text.rstrip("\n").split("\n")))
            sys.stderr.write(f"[rank {rank}] aborting the whole job (MPI_Abort)\n")
        _flush_for_abort()
        MPI.COMM_WORLD.Abort(1)

    sys.excepthook = hook
    _HOOK_INSTALLED = True

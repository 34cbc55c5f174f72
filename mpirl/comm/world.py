"""The MPI world: rank roles, collectives on flat buffers, abort on any exception.

This package is the only place in mpirl that imports mpi4py. Rank 0 is the
learner (or parameter server); ranks 1..N-1 are actors. Every wait goes
through :mod:`mpirl.comm.wait` so a waiting rank does not burn a core.
"""
from __future__ import annotations

import json
import sys
import time
import traceback

import numpy as np

from mpirl.comm.wait import wait, wait_all

LEARNER = 0


def _mpi():
    from mpi4py import MPI

    return MPI


class World:
    """The rank layout of one job and the collectives mpirl uses.

    Collectives are the nonblocking MPI calls (Ibcast, Igather(v), Iallreduce)
    on contiguous numpy buffers, completed with a backoff wait.
    """

    def __init__(self, comm=None):
        MPI = _mpi()
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    # ---- roles -----------------------------------------------------------
    @property
    def is_learner(self) -> bool:
        """True on rank 0, the learner / parameter server."""
        return self.rank == LEARNER

    @property
    def actor_ranks(self) -> list:
        """The ranks that act (1..size-1)."""
        return list(range(1, self.size))

    @property
    def num_actors(self) -> int:
        """How many actor ranks there are."""
        return self.size - 1

    # ---- collectives on buffers -----------------------------------------
    def barrier(self) -> None:
        """Synchronise all ranks without busy-polling."""
        wait(self.comm.Ibarrier())

    def bcast(self, buf: np.ndarray, root: int = LEARNER) -> np.ndarray:
        """Broadcast a contiguous buffer in place from ``root``."""
        wait(self.comm.Ibcast(_contig(buf), root=root))
        return buf

    def gather(self, sendbuf: np.ndarray, recvbuf: np.ndarray | None = None, root: int = LEARNER):
        """Gather equal-shaped buffers to ``root``; returns ``[size, *shape]`` there, None elsewhere."""
        _contig(sendbuf)
        if self.rank == root and recvbuf is None:
            recvbuf = np.empty((self.size,) + sendbuf.shape, dtype=sendbuf.dtype)
        wait(self.comm.Igather(sendbuf, recvbuf if self.rank == root else None, root=root))
        return recvbuf if self.rank == root else None

    def gatherv(self, sendbuf: np.ndarray, root: int = LEARNER):
        """Gather 1-D buffers of different lengths; returns a list of arrays on ``root``."""
        _contig(sendbuf)
        counts = self.gather(np.array([sendbuf.size], dtype=np.int64), root=root)
        if self.rank == root:
            counts = counts.reshape(-1)
            recv = np.empty(int(counts.sum()), dtype=sendbuf.dtype)
            displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
            wait(self.comm.Igatherv(sendbuf, [recv, (counts, displs)], root=root))
            return [recv[d:d + c] for d, c in zip(displs, counts)]
        wait(self.comm.Igatherv(sendbuf, None, root=root))
        return None

    def allreduce(self, buf: np.ndarray, op: str = "sum") -> np.ndarray:
        """Reduce a contiguous buffer in place across all ranks (sum, max or min)."""
        MPI = _mpi()
        mpi_op = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        wait(self.comm.Iallreduce(MPI.IN_PLACE, _contig(buf), op=mpi_op))
        return buf

    def sendrecv(self, sendbuf: np.ndarray, recvbuf: np.ndarray, peer: int, tag: int = 0) -> np.ndarray:
        """Exchange buffers with ``peer`` (nonblocking Isend + Irecv, one backoff wait); returns ``recvbuf``.

        Only the two ranks of the pair wait for each other: no global synchronisation.
        """
        _contig(sendbuf)
        _contig(recvbuf)
        reqs = [self.comm.Irecv(recvbuf, source=peer, tag=tag), self.comm.Isend(sendbuf, dest=peer, tag=tag)]
        wait_all(reqs)
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

    # ---- failure --------------------------------------------------------
    def abort(self, code: int = 1) -> None:
        """Kill every rank of the job now (MPI_Abort), after the launcher has forwarded our output."""
        _flush_for_abort()
        _mpi().COMM_WORLD.Abort(code)

    def wait_all(self, requests, timeout_s=None) -> bool:
        """Wait for nonblocking requests with backoff (see :mod:`mpirl.comm.wait`)."""
        return wait_all(requests, timeout_s)


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

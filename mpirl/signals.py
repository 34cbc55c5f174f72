"""Stop requests by signal: SIGUSR1, SIGTERM or SIGINT asks a training run to checkpoint and stop.

SLURM sends ``--signal=B:USR1@T`` (forwarded by the sbatch templates) before a
time limit or preemption; ``mpiexec``/``srun`` forward it to every rank. The
handlers only set a flag. Rank 0 reads it through ``RunContext.stop_requested``
and each algorithm's existing stop path makes all ranks agree (synchronous
algorithms reduce or broadcast the vote, asynchronous ones send shutdown from
rank 0). The run then writes its final checkpoint, skips the evaluation and
exits with :data:`EXIT_STOPPED`, which tells the batch script to requeue.

SIGINT (Ctrl-C: the terminal signals the whole process group) does the same,
so an interrupted run can be resumed. A second SIGINT more than
:data:`REPEAT_INT_S` after the first aborts at once (KeyboardInterrupt, which
the abort hook turns into MPI_Abort); one sooner is the same Ctrl-C arriving
twice (directly from the terminal and forwarded by ``mpiexec``).
"""
from __future__ import annotations

import signal
import time

#: Exit status of a run stopped by a signal after writing its checkpoint ("requeue me").
EXIT_STOPPED = 3

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)
#: A SIGINT this many seconds after the first one is a second Ctrl-C: abort without a checkpoint.
REPEAT_INT_S = 1.0

_received: list[int] = []
_first_int: list[float] = []


def _handler(signum, frame):  # noqa: ARG001 - signal handler signature
    if signum == signal.SIGINT:
        now = time.monotonic()
        if _first_int and now - _first_int[0] > REPEAT_INT_S:
            raise KeyboardInterrupt
        if not _first_int:
            _first_int.append(now)
    _received.append(signum)


def install() -> None:
    """Install the flag-setting handlers (main thread only; call once before training)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)


def requested() -> bool:
    """True once this process has received SIGUSR1, SIGTERM or SIGINT."""
    return bool(_received)


def received() -> str | None:
    """The name of the first stop signal received, or None."""
    return signal.Signals(_received[0]).name if _received else None


def reset() -> None:
    """Forget received signals (tests)."""
    _received.clear()
    _first_int.clear()

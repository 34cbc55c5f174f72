"""Stop requests by signal: SIGUSR1 or SIGTERM asks a training run to checkpoint and stop.

SLURM sends ``--signal=B:USR1@T`` (forwarded by the sbatch templates) before a
time limit or preemption; ``mpiexec``/``srun`` forward it to every rank. The
handlers only set a flag. Rank 0 reads it through ``RunContext.stop_requested``
and each algorithm's existing stop path makes all ranks agree (synchronous
algorithms reduce or broadcast the vote, asynchronous ones send shutdown from
rank 0). The run then writes its final checkpoint, skips the evaluation and
exits with :data:`EXIT_STOPPED`, which tells the batch script to requeue.
"""
from __future__ import annotations

import signal

#: Exit status of a run stopped by a signal after writing its checkpoint ("requeue me").
EXIT_STOPPED = 3

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

_received: list[int] = []


def _handler(signum, frame):  # noqa: ARG001 - signal handler signature
    _received.append(signum)


def install() -> None:
    """Install the flag-setting handlers (main thread only; call once before training)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)


def requested() -> bool:
    """True once this process has received SIGUSR1 or SIGTERM."""
    return bool(_received)


def received() -> str | None:
    """The name of the first stop signal received, or None."""
    return signal.Signals(_received[0]).name if _received else None


def reset() -> None:
    """Forget received signals (tests)."""
    _received.clear()

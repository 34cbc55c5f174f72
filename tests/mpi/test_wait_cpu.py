"""A rank waiting in mpirl's collectives or receives does not burn a core.

Rank 1 (or rank 0) sleeps ~2 s while the others wait; each waiting rank's CPU
time (``time.process_time``) over the wall time of the wait must stay under
5% of a core. For comparison the raw blocking ``comm.Barrier()`` is measured
and printed (MPICH busy-polls: expect close to a whole core).

    mpirun -n 2 python -m pytest --with-mpi -q tests/mpi/test_wait_cpu.py
"""
import sys
import time

import numpy as np
import pytest

SLEEP_S = 2.0
MAX_CPU_FRACTION = 0.05


def _measure(wait):
    wall0, cpu0 = time.perf_counter(), time.process_time()
    wait()
    return time.process_time() - cpu0, time.perf_counter() - wall0


@pytest.fixture
def report(world, capsys):
    """Print a CPU fraction past pytest's output capture."""
    def write(what, cpu, wall):
        with capsys.disabled():
            sys.stderr.write(f"\n[rank {world.rank}/{world.size}] {what}: {cpu / wall:6.1%} of a core "
                             f"({cpu:.3f} s CPU over {wall:.2f} s waiting)\n")
            sys.stderr.flush()

    return write


def _sleeping_rank_then(world, sleeper, wait):
    """``sleeper`` sleeps SLEEP_S then calls ``wait``; everyone else calls ``wait`` at once and is measured."""
    world.barrier()  # start together
    if world.rank == sleeper:
        time.sleep(SLEEP_S)
        wait()
        return None
    return _measure(wait)


@pytest.mark.mpi(min_size=2)
def test_barrier_wait_is_cheap(world, report):
    got = _sleeping_rank_then(world, 1, world.barrier)
    if got is not None:
        cpu, wall = got
        report("World.barrier()", cpu, wall)
        assert wall > 0.8 * SLEEP_S  # it really waited for the sleeper
        assert cpu / wall < MAX_CPU_FRACTION, f"World.barrier used {cpu / wall:.1%} of a core"
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_raw_mpi_barrier_for_comparison(world, report):
    """Not asserted: documents that MPICH's blocking Barrier spins a whole core."""
    got = _sleeping_rank_then(world, 1, world.comm.Barrier)
    if got is not None:
        report("raw comm.Barrier() (MPICH busy-polls)", *got)
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_receiver_wait_is_cheap_on_the_learner(world, report):
    """Rank 0 waits in Receiver.recv for messages that the actors send after sleeping."""
    from mpirl.comm import MessageSpec
    from mpirl.comm.p2p import Receiver, Sender

    spec = MessageSpec({"x": ((16,), "f8")})
    tag = 21
    world.barrier()
    if world.is_learner:
        rx = Receiver(world, spec, tag, world.actor_ranks)

        def wait_all_actors():
            for _ in world.actor_ranks:
                assert rx.recv(timeout_s=30) is not None

        cpu, wall = _measure(wait_all_actors)
        rx.close()
        report("Receiver.recv() on rank 0", cpu, wall)
        assert wall > 0.8 * SLEEP_S
        assert cpu / wall < MAX_CPU_FRACTION, f"Receiver.recv used {cpu / wall:.1%} of a core"
    else:
        time.sleep(SLEEP_S)
        tx = Sender(world, spec, tag, slots=1)
        tx.buffer(0)["x"] = np.arange(16)
        tx.send(0, 0)
        assert tx.flush(timeout_s=30)
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_receiver_wait_is_cheap_on_the_actors(world, report):
    """Every actor waits in Receiver.recv while rank 0 sleeps, then rank 0 sends to each."""
    from mpirl.comm import MessageSpec
    from mpirl.comm.p2p import Receiver, Sender

    spec = MessageSpec({"x": ((16,), "f8")})
    tag = 22
    world.barrier()
    if world.is_learner:
        time.sleep(SLEEP_S)
        tx = Sender(world, spec, tag, slots=world.num_actors)
        for slot, dest in enumerate(world.actor_ranks):
            tx.send(slot, dest)
        assert tx.flush(timeout_s=30)
    else:
        rx = Receiver(world, spec, tag, [0])
        cpu, wall = _measure(lambda: rx.recv(timeout_s=30))
        rx.close()
        report("Receiver.recv() on an actor", cpu, wall)
        assert wall > 0.8 * SLEEP_S
        assert cpu / wall < MAX_CPU_FRACTION, f"Receiver.recv used {cpu / wall:.1%} of a core"
    world.barrier()

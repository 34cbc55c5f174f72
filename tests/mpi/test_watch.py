"""Silent ranks under mpirun: rank 0's waits with a deadline (World.watch_actors).

A slow rank that still reaches the collective passes the roll call and the wait completes; a rank
that does not answer is named in a SilentRankError; a Receiver on rank 0 names an actor that stopped
sending. The last rank plays the silent one (a Python sleep: alive, not in any MPI wait).

    mpirun -n 2 python -m pytest --with-mpi -q tests/mpi/test_watch.py
"""
import time

import numpy as np
import pytest

from mpirl.comm import MessageSpec
from mpirl.comm import watch as watch_mod
from mpirl.comm.p2p import Receiver, Sender
from mpirl.errors import SilentRankError

TIMEOUT_S = 0.3


@pytest.mark.mpi(min_size=2)
def test_a_slow_rank_that_answers_the_roll_call_is_waited_for(world):
    world.watch_actors(TIMEOUT_S)
    world.barrier()  # every rank has arrived once: from now on rank 0's deadline is TIMEOUT_S
    if world.rank == world.size - 1:
        time.sleep(TIMEOUT_S + 0.5)  # past the deadline, well within the roll call's grace
    buf = np.full(3, world.rank + 1.0)
    start = time.monotonic()
    world.allreduce(buf)
    np.testing.assert_array_equal(buf, sum(range(1, world.size + 1)))
    if world.rank == 0:
        assert time.monotonic() - start > TIMEOUT_S  # it did wait past the deadline, then finished
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_a_rank_that_misses_the_roll_call_is_named(world):
    world.watch_actors(TIMEOUT_S)
    world.barrier()
    silent = world.size - 1
    buf = np.ones(2)
    if world.rank == silent:
        time.sleep(TIMEOUT_S + watch_mod.ROLL_CALL_GRACE_S + 1.0)
        world.allreduce(buf)
    elif world.rank == 0:
        start = time.monotonic()
        with pytest.raises(SilentRankError) as err:
            world.allreduce(buf)
        took = time.monotonic() - start
        assert str(err.value).startswith(f"rank {silent} went silent: no answer after rank 0 waited")
        assert "in an allreduce (fault.actor_timeout_s = 0.3)" in str(err.value)
        assert TIMEOUT_S + watch_mod.ROLL_CALL_GRACE_S - 0.1 < took < TIMEOUT_S + watch_mod.ROLL_CALL_GRACE_S + 1.0
    else:
        world.allreduce(buf)  # these answer the roll call: they are not named
    world.watch_actors(0)
    world.barrier()  # rank 0's abandoned allreduce completes in the background once the sleeper joins


@pytest.mark.mpi(min_size=2)
def test_a_receiver_on_rank_0_names_the_actor_that_stopped_sending(world):
    world.watch_actors(TIMEOUT_S)
    spec = MessageSpec({"x": ((4,), np.float64)})
    silent = world.size - 1
    if world.rank == 0:
        rx = Receiver(world, spec, 7, world.actor_ranks)
        heard = set()
        with pytest.raises(SilentRankError) as err:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = rx.recv(timeout_s=0.05)
                if got is not None:
                    heard.add(got[0])
        assert silent in heard  # it had spoken: the silence allowance, not the start-up one, applied
        assert str(err.value).startswith(f"rank {silent} went silent: no message for ")
        rx.close()
    else:
        tx = Sender(world, spec, 7, slots=1)
        end = time.monotonic() + (0 if world.rank == silent else TIMEOUT_S + 1.0)
        while True:  # the others keep sending until well past the silent rank's deadline
            slot = tx.acquire()
            tx.buffer(slot)["x"] = world.rank
            tx.send(slot, 0)
            if time.monotonic() >= end:
                break
            time.sleep(0.02)
        tx.flush(timeout_s=5)
    world.watch_actors(0)
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_without_a_timeout_nothing_is_watched(world):
    world.watch_actors(0)
    if world.rank == 0:
        rx = Receiver(world, MessageSpec({"x": ((1,), np.float64)}), 8, world.actor_ranks)
        assert rx.clock is None
        assert rx.recv(timeout_s=0.2) is None
        rx.close()
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_deliver_all_names_the_rank_that_never_takes_its_message(world):
    # 4 MiB: past every eager limit, so a send completes only when its receiver takes it.
    from mpirl.comm.p2p import deliver_all

    world.watch_actors(TIMEOUT_S)
    spec = MessageSpec({"x": ((1 << 19,), np.float64)})
    silent = world.size - 1
    if world.rank == 0:
        senders = {r: Sender(world, spec, 9, slots=1) for r in world.actor_ranks}
        for r, tx in senders.items():
            tx.buffer(0)["x"] = r
            tx.send(0, r)
        start = time.monotonic()
        with pytest.raises(SilentRankError) as err:
            deliver_all(world, senders, "the stop message")
        assert TIMEOUT_S <= time.monotonic() - start < TIMEOUT_S + 2
        assert str(err.value) == (f"rank {silent} went silent: rank 0 waited {TIMEOUT_S:g} s for the stop message "
                                  f"to be taken (fault.actor_timeout_s = {TIMEOUT_S:g}); stopped, hung or far too "
                                  f"slow; aborting the job")
        for tx in senders.values():
            assert tx.flush(timeout_s=20)  # the sleeper takes it in the end
    else:
        if world.rank == silent:
            time.sleep(TIMEOUT_S + 1.0)
        rx = Receiver(world, spec, 9, [0], watch=False)
        _, msg = rx.recv(timeout_s=20)
        assert msg["x"][0] == world.rank
        rx.close()
    world.watch_actors(0)
    world.barrier()

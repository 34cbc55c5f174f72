"""mpirl.comm.control under mpirun: report rounds, stop and goodbyes of asynchronous actors.

    mpirun -n 2 python -m pytest --with-mpi -q tests/mpi/test_control.py
    mpirun -n 4 python -m pytest --with-mpi -q tests/mpi/test_control.py

Actors keep sending data (synchronous sends from a one-slot pool, as Ape-X and
IMPALA do) and look at their control link between messages; rank 0 keeps
taking data while a round is open. Every rank checks what it got.
"""
import time

import numpy as np
import pytest

from mpirl.comm import MessageSpec
from mpirl.comm.control import ActorControl, StateReports, poll_json
from mpirl.comm.p2p import Receiver, Sender
from mpirl.comm.wait import poll_until
from mpirl.errors import SilentRankError

DATA, UP, DOWN, WEIGHTS = 51, 52, 53, 54
SPEC = MessageSpec({"n": ((), np.int64)})


def _big_state(rank, sent):
    # Large enough (~80 KB of JSON) for a rendezvous send on every transport.
    return {"rank": rank, "sent": sent, "pad": list(range(20_000))}


@pytest.mark.mpi(min_size=2)
def test_report_rounds_then_stop_with_final_states(world):
    if world.is_learner:
        rx = Receiver(world, SPEC, DATA, world.actor_ranks)
        pubs = {r: Sender(world, SPEC, WEIGHTS, slots=1) for r in world.actor_ranks}
        reports = StateReports(world, UP, DOWN)
        assert reports.poll() is None and not reports.pending
        for round_id in (1, 2, 3):
            reports.request()
            assert reports.pending and reports.round == round_id
            got = []

            def round_complete():
                rx.poll()  # keep taking data: actors waiting on a full pool must get to their control link
                got.append(reports.poll())
                return got[-1] is not None

            assert poll_until(round_complete, timeout_s=60)
            docs = got[-1]
            assert sorted(docs) == world.actor_ranks and not reports.pending
            assert all(docs[r]["rank"] == r and len(docs[r]["pad"]) == 20_000 for r in docs)
        for r, tx in pubs.items():  # weights in flight at the stop must be delivered first
            tx.send(0, r)
        final = reports.shutdown(rx, pubs)
        assert sorted(final) == world.actor_ranks
        assert all(final[r]["rank"] == r and final[r]["sent"] >= 1 for r in final)
    else:
        tx = Sender(world, SPEC, DATA, slots=1, synchronous=True)
        weights = Receiver(world, SPEC, WEIGHTS, [0], watch=False)
        sent = [0]
        ctl = ActorControl(world, lambda: _big_state(world.rank, sent[0]), UP, DOWN)
        stop = False
        while not stop:
            weights.poll()
            slot = None
            while slot is None and not stop:
                slot = tx.acquire(timeout_s=0.01)
                stop = ctl.poll()
            if slot is None:
                break
            tx.buffer(slot)["n"] = sent[0]
            tx.send(slot, 0)
            sent[0] += 1
            stop = ctl.poll()
        assert ctl.answered == 3
        ctl.goodbye(tx)
        weights.close()
    assert poll_json(world, UP) is None and poll_json(world, DOWN) is None  # nothing left unmatched
    world.barrier()


@pytest.mark.mpi(min_size=2)
def test_rounds_carried_in_the_callers_messages_and_a_missing_goodbye(world):
    # A3C's form: rank 0 tells each worker about an open round in its own reply (here: one int64);
    # at the end it collects goodbyes with the fault deadline, which names a worker that never says it.
    timeout = 0.3
    silent = world.size - 1
    world.watch_actors(timeout)
    if world.is_learner:
        reports = StateReports(world, UP)
        reports.request()
        asks = {r: Sender(world, SPEC, DOWN, slots=1) for r in world.actor_ranks}
        for r, tx in asks.items():
            tx.buffer(0)["n"] = reports.asking(r)
            tx.send(0, r)
        got = []
        assert poll_until(lambda: got.append(reports.poll()) or got[-1] is not None, timeout_s=60)
        assert sorted(got[-1]) == world.actor_ranks and reports.asking(1) == 0
        for tx in asks.values():
            assert tx.flush(timeout_s=20)
        world.barrier()  # the workers now say goodbye, all but the last
        start = time.monotonic()
        with pytest.raises(SilentRankError) as err:
            reports.collect_goodbyes("the workers' goodbyes")
        assert timeout <= time.monotonic() - start < timeout + 2
        assert str(err.value).startswith(f"rank {silent} went silent: rank 0 waited {timeout:g} s for "
                                         f"the workers' goodbyes")
        world.barrier()  # the last one says it now
        final = reports.collect_goodbyes()
        assert sorted(final) == world.actor_ranks
    else:
        ctl = ActorControl(world, lambda: {"rank": world.rank}, UP)
        rx = Receiver(world, SPEC, DOWN, [0], watch=False)
        _, msg = rx.recv(timeout_s=60)
        ctl.answer(int(msg["n"]))
        ctl.answer(int(msg["n"]))  # once per round
        assert ctl.answered == 1
        rx.close()
        world.barrier()
        if world.rank != silent:
            ctl.goodbye()
        world.barrier()
        if world.rank == silent:
            ctl.goodbye()
    world.barrier()
    world.watch_actors(0)

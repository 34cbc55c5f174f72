"""Rare control messages between rank 0 and asynchronous actors: state reports, stop, goodbye.

Asynchronous actors (Ape-X, IMPALA, A3C) never take part in a collective
after start-up, so rank 0 cannot gather their RNG states at a checkpoint the
way synchronous algorithms do. Instead:

- rank 0 opens a *report round* (:meth:`StateReports.request`) and keeps
  training; each actor answers the next time it looks (between two messages
  of data) with a JSON document of its state at that moment
  (:meth:`ActorControl.poll`); once every actor has answered,
  :meth:`StateReports.poll` returns ``{rank: doc}`` and rank 0 writes the
  checkpoint;
- at the end, rank 0 asks the actors to stop and each one's goodbye carries its
  final state (:meth:`StateReports.shutdown`, :meth:`ActorControl.goodbye`).

Messages are UTF-8 JSON (never pickle) in ``uint8`` buffers, sent with
``Isend`` and received with a matched probe (``Improbe``) then ``Irecv``,
so every wait is a backoff wait (:mod:`mpirl.comm.wait`). Requests and the stop
travel on one tag (rank 0 -> actor) and reports and goodbyes on another
(actor -> rank 0): MPI keeps messages of one tag between two ranks in order,
so an actor that has taken the stop has taken every request before it, and
rank 0 that has an actor's goodbye has every report that actor sent before it.
No message is left unmatched.

Deadlines: while a report round is open rank 0 keeps polling its data
Receivers, whose silence clocks name a stopped actor as before; the final
waits (:meth:`StateReports.shutdown`, :meth:`StateReports.collect_goodbyes`)
are bounded by ``fault.actor_timeout_s`` through those clocks or directly.
"""
from __future__ import annotations

import json

import numpy as np

from mpirl.comm.wait import poll_until, wait, wait_all
from mpirl.comm.watch import silent_message
from mpirl.errors import SilentRankError


def _encode(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8).copy()


class JsonOutbox:
    """Nonblocking JSON sends; each buffer is kept alive until its send completes."""

    def __init__(self, world, tag: int):
        self.world, self.tag = world, tag
        self.pending = []  # (request, buffer)

    def send(self, obj, dest: int) -> None:
        """Start sending ``obj`` (JSON-serialisable) to ``dest``; never blocks."""
        buf = _encode(obj)
        self.pending.append((self.world.comm.Isend(buf, dest=dest, tag=self.tag), buf))
        self.reap()

    def reap(self) -> None:
        """Forget the sends that have completed."""
        self.pending = [(r, b) for r, b in self.pending if not r.Test()]

    def flush(self, timeout_s=None) -> bool:
        """Wait (with backoff) until every send has completed; False on timeout."""
        ok = wait_all([r for r, _ in self.pending], timeout_s) if self.pending else True
        if ok:
            self.pending = []
        return ok


def poll_json(world, tag: int, source: int | None = None):
    """``(source, obj)`` of one JSON message that has arrived on ``tag``, or None; never blocks long.

    A matched probe takes the message off the queue; its (small) payload is then
    received with ``Irecv`` and a backoff wait.
    """
    from mpi4py import MPI

    status = MPI.Status()
    msg = world.comm.Improbe(source=MPI.ANY_SOURCE if source is None else source, tag=tag, status=status)
    if msg is None:
        return None
    buf = np.empty(status.Get_count(MPI.BYTE), dtype=np.uint8)
    wait(msg.Irecv(buf))
    return status.Get_source(), json.loads(buf.tobytes().decode())


class ActorControl:
    """An actor's side: answers rank 0's state requests, takes its stop, says goodbye with its state.

    ``state()`` returns this actor's JSON-able state now (its RNG document).
    ``down_tag``: rank 0's requests and stop (None when rank 0 asks through a
    message of its own, as A3C's parameter replies do: call :meth:`answer`);
    ``up_tag``: this actor's reports and goodbye.
    """

    def __init__(self, world, state, up_tag: int, down_tag: int | None = None):
        self.world, self.state, self.down_tag = world, state, down_tag
        self.out = JsonOutbox(world, up_tag)
        self.answered = 0  # the newest report round answered
        self.stopped = False

    def answer(self, round_id: int) -> None:
        """Report this actor's state for round ``round_id`` (once per round)."""
        if round_id > self.answered:
            self.answered = round_id
            self.out.send({"kind": "report", "round": round_id, "state": self.state()}, 0)

    def poll(self) -> bool:
        """Answer the requests that have arrived; True once rank 0 has asked this actor to stop."""
        while not self.stopped:
            got = poll_json(self.world, self.down_tag, source=0)
            if got is None:
                break
            msg = got[1]
            if msg["kind"] == "report":
                self.answer(int(msg["round"]))
            elif msg["kind"] == "stop":
                self.stopped = True  # rank 0 sends nothing after it on this tag
        self.out.reap()
        return self.stopped

    def goodbye(self, data_sender=None) -> None:
        """Complete every data send, then tell rank 0 this actor is done, with its final state."""
        if data_sender is not None:
            data_sender.flush()
        self.out.send({"kind": "bye", "state": self.state()}, 0)
        self.out.flush()


class StateReports:
    """Rank 0's side: report rounds over the actors, their stop and goodbyes.

    ``up_tag``: the actors' reports and goodbyes; ``down_tag``: requests and
    stop (None: the caller tells each actor about an open round itself, see
    :meth:`asking`).
    """

    def __init__(self, world, up_tag: int, down_tag: int | None = None):
        self.world, self.up_tag = world, up_tag
        self.out = JsonOutbox(world, down_tag) if down_tag is not None else None
        self.round = 0
        self.waiting: set = set()  # actors that have not answered the open round
        self.docs: dict = {}
        self.final: dict = {}  # rank -> the state its goodbye carried
        self.pending = False

    def request(self) -> None:
        """Open a report round: every actor will send its state (it answers when it next looks)."""
        self.round += 1
        self.waiting, self.docs, self.pending = set(self.world.actor_ranks), {}, True
        if self.out is not None:
            for r in self.world.actor_ranks:
                self.out.send({"kind": "report", "round": self.round}, r)

    def asking(self, rank: int) -> int:
        """The open round ``rank`` still has to answer, or 0 (for requests carried by the caller's messages)."""
        return self.round if self.pending and rank in self.waiting else 0

    def _take(self) -> bool:
        got = poll_json(self.world, self.up_tag)
        if got is None:
            return False
        rank, msg = got
        if msg["kind"] == "bye":
            self.final[rank] = msg["state"]
        elif self.pending and int(msg["round"]) == self.round:
            self.docs[rank] = msg["state"]
            self.waiting.discard(rank)
        return True  # a report of an older round is dropped

    def poll(self):
        """Take the reports that have arrived; ``{rank: state}`` once every actor answered the round, else None."""
        while self._take():
            pass
        if self.out is not None:
            self.out.reap()
        if not self.pending or self.waiting:
            return None
        self.pending = False
        return self.docs

    def step(self, due: bool, save) -> None:
        """One turn of the checkpoint protocol in rank 0's loop: open a round when a checkpoint is ``due``
        and none is open; once every actor has answered, ``save({rank: doc})`` writes the checkpoint."""
        if self.pending:
            docs = self.poll()
            if docs is not None:
                save(docs)
        elif due:
            self.request()

    def shutdown(self, data_rx, publishers: dict) -> dict:
        """Clean shutdown of asynchronous actors (Ape-X, IMPALA); returns ``{rank: final state}``.

        Completes the weight sends in flight (``publishers``: rank -> Sender),
        tells every actor to stop, then keeps taking (and dropping) their data,
        which frees actors blocked on a full send pool, until each has said
        goodbye; finally cancels the receives still posted. ``data_rx`` watches
        each actor until its goodbye, so a silent one is named
        (``fault.actor_timeout_s``) instead of hanging the job.
        """
        self.pending = False

        def weights_delivered():
            data_rx.poll()  # actors blocked on a full send pool must be able to move on
            return all(s.free_slot() is not None for s in publishers.values())

        poll_until(weights_delivered)
        for r in self.world.actor_ranks:
            self.out.send({"kind": "stop"}, r)
        left = set(self.world.actor_ranks)

        def drained():
            data_rx.poll()
            while self._take():
                pass
            for r in left & set(self.final):
                left.discard(r)
                data_rx.stop_watching(r)
            return not left

        poll_until(drained)
        data_rx.close()
        self.out.flush()  # every actor has taken its stop: complete at once
        return dict(self.final)

    def collect_goodbyes(self, what: str = "its goodbye") -> dict:
        """Wait for every actor's goodbye (after the caller told them to stop); ``{rank: final state}``.

        Bounded by ``fault.actor_timeout_s`` (0: no bound): an actor that never
        says goodbye is named in a :class:`~mpirl.errors.SilentRankError`.
        """
        self.pending = False
        ranks = set(self.world.actor_ranks)

        def all_said():
            while self._take():
                pass
            return ranks <= set(self.final)

        timeout = self.world.actor_timeout_s or None
        if not poll_until(all_said, timeout):
            late = sorted(ranks - set(self.final))
            raise SilentRankError(silent_message(late, self.world.actor_timeout_s,
                                                 f"rank 0 waited {timeout:g} s for {what}"))
        if self.out is not None:
            self.out.flush()
        return dict(self.final)

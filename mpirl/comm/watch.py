"""Detecting silent ranks: rank 0 aborts instead of waiting forever for a rank that sends nothing.

A rank stopped (SIGSTOP, a debugger, a swapped-out node) or hung in a system
call is still alive, so the launcher does not end the job as it does when a
rank dies. Two waits on rank 0 can then last forever, and each gets a deadline
of ``fault.actor_timeout_s`` (``World.watch_actors``):

- a :class:`~mpirl.comm.p2p.Receiver` on rank 0 fed by actors keeps a
  :class:`SilenceClock`: how long each source has sent nothing, counted only
  while rank 0 listens (polls), so time rank 0 spends elsewhere (an update, a
  rate limiter that stops taking data) is not blamed on the actors;
- a collective or pairwise exchange on rank 0 that outlasts the deadline
  starts a *roll call*: rank 0 asks every rank to answer, and ranks answer from
  inside their own comm-layer waits. The ranks that do not answer within
  :data:`ROLL_CALL_GRACE_S` are the silent ones (MPI does not say which rank a
  collective is missing). If everyone answers, rank 0 keeps waiting.

Either way the wait raises :class:`~mpirl.errors.SilentRankError` naming the
ranks, which the CLI turns into one line and an abort of the job (exit 4).
"""
from __future__ import annotations

from mpirl.comm.tags import TAGS

#: A rank's first message (or rank 0's first collective with every rank) may take this long:
#: start-up (imports, environment creation) can take a minute on a loaded node.
STARTUP_GRACE_S = 120.0
#: A pause between two polls longer than this counts as this much silence only: rank 0 was not listening.
LISTEN_GAP_S = 0.5
#: How often a Receiver on rank 0 checks its clocks.
CHECK_EVERY_S = 0.1
#: How long rank 0 waits for answers to a roll call (waiting ranks answer within ~10 ms).
ROLL_CALL_GRACE_S = 2.0
#: How often a waiting rank looks for a roll call.
ANSWER_EVERY_S = 0.01
ROLL_CALL_TAG, ROLL_ANSWER_TAG = TAGS["roll_call"], TAGS["roll_answer"]
TIMEOUT_KEY = "fault.actor_timeout_s"


class SilenceClock:
    """How long each source has sent nothing, in time its owner spent listening.

    ``tick(now)`` at every poll adds the time since the previous poll, capped at
    ``max_gap_s``; ``heard_from(source)`` resets that source. A source becomes
    silent after ``timeout_s`` of listening, or ``max(timeout_s, startup_s)``
    before its first message.
    """

    def __init__(self, sources, timeout_s: float, now: float, startup_s: float = STARTUP_GRACE_S,
                 max_gap_s: float = LISTEN_GAP_S):
        self.timeout_s, self.startup_s, self.max_gap_s = timeout_s, max(timeout_s, startup_s), max_gap_s
        self.listened = 0.0
        self.last = now
        self.heard = {s: 0.0 for s in sources}  # source -> listening time at its last message
        self.spoke = set()

    def tick(self, now: float) -> None:
        """Count the time since the previous tick as listening time (at most ``max_gap_s`` of it)."""
        self.listened += min(max(0.0, now - self.last), self.max_gap_s)
        self.last = now

    def heard_from(self, source) -> None:
        """``source`` has just delivered a message."""
        if source in self.heard:
            self.heard[source] = self.listened
            self.spoke.add(source)

    def forget(self, source) -> None:
        """Stop watching ``source`` (it has legitimately finished sending)."""
        self.heard.pop(source, None)

    def silent(self) -> dict:
        """``{source: seconds of silence}`` for every watched source past its allowance."""
        out = {}
        for s, at in self.heard.items():
            quiet = self.listened - at
            if quiet > (self.timeout_s if s in self.spoke else self.startup_s):
                out[s] = quiet
        return out


def silent_message(ranks, timeout_s: float, how: str) -> str:
    """The one-line report of silent ranks (``how``: what rank 0 was waiting in and for how long)."""
    ranks = sorted(ranks)
    who = f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(str(r) for r in ranks)
    return (f"{who} went silent: {how} ({TIMEOUT_KEY} = {timeout_s:g}); stopped, hung or far too slow; "
            f"aborting the job")

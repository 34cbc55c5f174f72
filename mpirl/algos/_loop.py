"""What the training loops share: the return window, the stop rule, counters, weight publication, async actors.

Every torch algorithm stops on the same rule (:func:`stop_reached`): the
mean return of the last :data:`WINDOW` episodes reaches
``stop.episode_return_mean`` (and, when asked, the greedy check of
``RunContext.stop_confirmed`` agrees), or the step budget is spent, or a
signal asked to stop.
"""
from __future__ import annotations

from collections import deque

import numpy as np

#: Episodes in the return window that the stop rule and the logged ``episode_return_mean`` average.
WINDOW = 100


class ReturnWindow:
    """The returns of the last ``maxlen`` episodes (restored from a checkpoint's ``extra["returns"]``)."""

    def __init__(self, restored=(), maxlen: int = WINDOW):
        self.returns = deque(restored, maxlen=maxlen)

    def extend(self, returns) -> None:
        """Add finished episodes' returns (a list, or an array)."""
        self.returns.extend(returns.tolist() if isinstance(returns, np.ndarray) else returns)

    @property
    def mean(self) -> float:
        """Mean return in the window (NaN while empty)."""
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def __len__(self) -> int:
        return len(self.returns)

    def sum(self) -> float:
        """Sum of the returns in the window (for reductions over ranks)."""
        return float(sum(self.returns))

    def state(self) -> list:
        """The returns, for a checkpoint's ``extra["returns"]``."""
        return list(self.returns)


def stop_reached(cfg, count: int, mean: float) -> bool:
    """The return rule: ``count`` >= :data:`WINDOW` episodes average at least ``stop.episode_return_mean``."""
    threshold = cfg.stop.episode_return_mean
    return threshold is not None and count >= WINDOW and mean >= threshold


def should_stop(ctx, counters: dict, count: int, mean: float, state_fn, *, collective: bool, stop_vote: bool) -> bool:
    """The stop decision: the budget is spent, or the return rule holds and its greedy check agrees, or a signal.

    ``state_fn()`` gives the learner state the greedy check evaluates;
    ``collective``: every rank takes the decision together (a2c, gossip);
    ``stop_vote``: whether a signal asked to stop (rank 0's vote, or its sum over ranks).
    """
    reached = stop_reached(ctx.cfg, count, mean)
    reached = reached and ctx.stop_confirmed(state_fn, counters["episodes"], collective=collective)
    return counters["env_steps"] >= ctx.cfg.total_env_steps or reached or bool(stop_vote)


def absorb(counters: dict, window: ReturnWindow, msg) -> None:
    """Count an actor message's env steps and finished episodes, and put their returns into the window."""
    counters["env_steps"] += int(msg["steps"])
    n = int(msg["episodes"])
    counters["episodes"] += n
    window.extend(msg["episode_returns"][:n])


def absorb_sums(counters: dict, got: dict) -> float:
    """Count a reduction's summed ``steps`` and ``episodes`` (a2c, gossip_a2c, ppo); returns the window's mean
    return over all ranks, ``return_sum / return_count`` (NaN before any episode ended)."""
    counters["env_steps"] += int(got["steps"])
    counters["episodes"] += int(got["episodes"])
    return got["return_sum"] / got["return_count"] if got["return_count"] else float("nan")


class WeightPublisher:
    """Rank 0's weight publication to every actor: one preallocated send slot each.

    An actor still receiving the previous publication is skipped (it gets the
    next one), so a slow actor never holds the learner up.
    """

    def __init__(self, world, spec, tag: int):
        from mpirl.comm.p2p import Sender

        self.senders = {r: Sender(world, spec, tag, slots=1) for r in world.actor_ranks}

    def publish(self, params: np.ndarray, version: int) -> None:
        """Send ``params`` and their ``version`` to every actor whose last publication has arrived."""
        for rank, sender in self.senders.items():
            if sender.free_slot() is not None:
                msg = sender.buffer(0)
                msg["params"], msg["version"] = params, version
                sender.send(0, rank)


def act_asynchronously(ctx, flat: np.ndarray, weights, tx, ctl, produce, fill) -> None:
    """An asynchronous actor's loop (Ape-X, IMPALA), until rank 0 says stop; then its goodbye.

    Before each round it drains the weights receiver to the newest
    publication (without blocking); ``produce(version)`` makes the round's
    data; the loop then waits for a free send slot while answering control
    messages (a full pool means the learner is behind: wait, not spin), and
    ``fill(msg, data, version)`` writes the message it sends to rank 0.
    """
    _, first = weights.recv()
    flat[...] = first["params"]
    version = int(first["version"])
    stop = False
    while not stop:
        got = weights.poll()
        while got is not None:
            flat[...] = got[1]["params"]
            version = int(got[1]["version"])
            got = weights.poll()
        data = produce(version)
        ctx.mark_first_step()
        slot = tx.free_slot()
        while slot is None and not stop:
            slot = tx.acquire(timeout_s=0.05)
            stop = ctl.poll()  # answers report requests; True (for good) once rank 0 said stop
        if slot is None:
            break
        fill(tx.buffer(slot), data, version)
        tx.send(slot, ctx.world.learner)
        stop = ctl.poll()
    ctl.goodbye(tx)  # carries this actor's final state for the last checkpoint
    weights.close()

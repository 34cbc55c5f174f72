"""Decentralized gossip A2C (`algo = "gossip_a2c"`): see run.py for the message flow and schedule."""
from __future__ import annotations

from mpirl.algos.a2c import SUPPORTS, check_env, greedy_policy, state_shapes
from mpirl.algos.gossip_a2c.config import GossipA2CConfig as Config

__all__ = ["Config", "MIN_RANKS", "SUPPORTS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 1
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.gossip_a2c.run import train as run

    return run(ctx)

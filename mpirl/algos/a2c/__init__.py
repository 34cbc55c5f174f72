"""Synchronous A2C (`algo = "a2c"`): see run.py for the message flow.

The module contract (``check_env``, ``state_shapes``, ``greedy_policy``) is
shared with `a3c` and `gossip_a2c`, which learn the same network.
"""
from __future__ import annotations

from mpirl.algos import _contract
from mpirl.algos.a2c.config import A2CConfig as Config
from mpirl.algos.a2c.config import network_config

__all__ = ["Config", "MIN_RANKS", "SUPPORTS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 1
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True
#: Observation and action kinds this algorithm handles (mpirl.specs).
SUPPORTS = {"obs": ("vector", "image"), "action": ("discrete", "box")}

check_env, state_shapes, greedy_policy = _contract.functions(SUPPORTS, network_config, "net")


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.a2c.run import train as run

    return run(ctx)

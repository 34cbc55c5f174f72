"""Synchronous distributed DQN (`algo = "dqn"`): see run.py for the message flow."""
from __future__ import annotations

from mpirl.algos import _contract
from mpirl.algos.dqn.config import DQNConfig as Config
from mpirl.algos.dqn.config import network_config

__all__ = ["Config", "MIN_RANKS", "SUPPORTS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 2
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True
#: On --resume only rank 0 receives the checkpoint's arrays: the actors get the weights it publishes.
RESUME_STATE = "learner"
#: Observation and action kinds this algorithm handles (mpirl.specs).
SUPPORTS = {"obs": ("vector", "image"), "action": ("discrete",)}

check_env, state_shapes, greedy_policy = _contract.functions(SUPPORTS, network_config, "online")


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.dqn.run import train as run

    return run(ctx)

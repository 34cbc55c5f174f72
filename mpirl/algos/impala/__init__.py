"""IMPALA with V-trace (`algo = "impala"`): see run.py for the message flow."""
from __future__ import annotations

from mpirl.algos import _contract
from mpirl.algos.impala.config import ImpalaConfig as Config
from mpirl.algos.impala.config import network_config

__all__ = ["Config", "MIN_RANKS", "SUPPORTS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 2
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True
#: On --resume only rank 0 receives the checkpoint's arrays: the actors get the weights it publishes.
RESUME_STATE = "learner"
#: Observation and action kinds this algorithm handles (mpirl.specs).
SUPPORTS = {"obs": ("vector", "image"), "action": ("discrete", "box")}

_check, state_shapes, greedy_policy = _contract.functions(SUPPORTS, network_config, "net")


def check_env(cfg, env) -> None:
    """The environment suits the policy network (`learner.device` is checked with every algorithm's)."""
    _check(cfg, env)


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.impala.run import train as run

    return run(ctx)

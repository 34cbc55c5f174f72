"""A3C with a parameter server (`algo = "a3c"`): see run.py for the message flow."""
from __future__ import annotations

from mpirl.algos.a2c import SUPPORTS, check_env, greedy_policy, state_shapes
from mpirl.algos.a3c.config import A3CConfig as Config

__all__ = ["Config", "MIN_RANKS", "SUPPORTS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 2
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True
#: On --resume only rank 0 receives the checkpoint's arrays: the actors get the weights it publishes.
RESUME_STATE = "learner"


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.a3c.run import train as run

    return run(ctx)

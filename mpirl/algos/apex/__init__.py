"""Ape-X DQN (`algo = "apex"`): see run.py for the message flow."""
from mpirl.algos.apex.config import ApexConfig as Config
from mpirl.algos.dqn import SUPPORTS, check_env, greedy_policy, state_shapes  # same network and spaces

__all__ = ["Config", "MIN_RANKS", "SUPPORTS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 2
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True
#: On --resume only rank 0 receives the checkpoint's arrays: the actors get the weights it publishes.
RESUME_STATE = "learner"


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.apex.run import train as run

    return run(ctx)

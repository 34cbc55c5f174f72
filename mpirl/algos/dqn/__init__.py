"""Synchronous distributed DQN (`algo = "dqn"`): see run.py for the message flow."""
from __future__ import annotations

from mpirl.algos._mlp_contract import argmax_policy, check_box_discrete, dims
from mpirl.algos.dqn.config import DQNConfig as Config

__all__ = ["Config", "MIN_RANKS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 2
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True


def check_env(cfg, env) -> None:
    """Q-learning with an MLP needs a flat Box observation space and Discrete actions."""
    check_box_discrete(cfg, env)


def state_shapes(cfg, env) -> dict:
    """Shapes of the online network's tensors, which a resumed checkpoint must match."""
    from mpirl.algos.dqn.learner import make_network

    net = make_network(cfg.agent, *dims(env))
    return {f"online/{k}": tuple(v.shape) for k, v in net.state_dict().items()}


def greedy_policy(state: dict, cfg):
    """The greedy policy of a checkpoint's online network."""
    from mpirl.algos.dqn.learner import make_network

    return argmax_policy(state, cfg, make_network, "online")


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.dqn.run import train as run

    return run(ctx)

"""Synchronous A2C (`algo = "a2c"`): see run.py for the message flow.

The module contract (``check_env``, ``state_shapes``, ``greedy_policy``) is
shared with `a3c` and `gossip_a2c`, which learn the same network.
"""
from __future__ import annotations

from mpirl.algos._mlp_contract import argmax_policy, check_box_discrete, dims
from mpirl.algos.a2c.config import A2CConfig as Config

__all__ = ["Config", "MIN_RANKS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 1
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True


def check_env(cfg, env) -> None:
    """An MLP policy over a categorical distribution needs a Box observation space and Discrete actions."""
    check_box_discrete(cfg, env)


def state_shapes(cfg, env) -> dict:
    """Shapes of the network's tensors, which a resumed checkpoint must match.

    Computed from the layer sizes of ``ActorCritic`` (Linear layers at even
    indices of each MLP) without building it: validation on rank 0 then does
    not import torch while the other ranks wait for its verdict.
    """
    obs_dim, n_actions = dims(env)
    shapes = {}
    for head, out in (("actor", n_actions), ("critic", 1)):
        sizes = [obs_dim, *cfg.agent.hidden, out]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"net/{head}.{2 * i}.weight"] = (b, a)
            shapes[f"net/{head}.{2 * i}.bias"] = (b,)
    return shapes


def greedy_policy(state: dict, cfg):
    """The most probable action of a checkpoint's policy network (``net/*``)."""
    from mpirl.algos.a2c.learner import make_network

    return argmax_policy(state, cfg, make_network, "net", head=lambda net: net.actor)


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.a2c.run import train as run

    return run(ctx)

"""Synchronous A2C (`algo = "a2c"`): see run.py for the message flow.

The module contract (``check_env``, ``state_shapes``, ``greedy_policy``) is
shared with `a3c` and `gossip_a2c`, which learn the same network.
"""
from __future__ import annotations

import numpy as np

from mpirl.algos.a2c.config import A2CConfig as Config
from mpirl.errors import ConfigError

__all__ = ["Config", "MIN_RANKS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 1


def check_env(cfg, env) -> None:
    """An MLP policy over a categorical distribution needs a Box observation space and Discrete actions."""
    from gymnasium import spaces

    if not isinstance(env.observation_space, spaces.Box):
        raise ConfigError(f"algo {cfg.algo!r} needs a Box observation space; env {cfg.env.id!r} has "
                          f"{env.observation_space} (key 'env.id')")
    if not isinstance(env.action_space, spaces.Discrete):
        raise ConfigError(f"algo {cfg.algo!r} needs a Discrete action space; env {cfg.env.id!r} has "
                          f"{env.action_space} (key 'env.id')")


def _dims(env):
    return int(np.prod(env.observation_space.shape)), int(env.action_space.n)


def state_shapes(cfg, env) -> dict:
    """Shapes of the network's tensors, which a resumed checkpoint must match.

    Computed from the layer sizes of ``ActorCritic`` (Linear layers at even
    indices of each MLP) without building it: validation on rank 0 then does
    not import torch while the other ranks wait for its verdict.
    """
    obs_dim, n_actions = _dims(env)
    shapes = {}
    for head, out in (("actor", n_actions), ("critic", 1)):
        sizes = [obs_dim, *cfg.agent.hidden, out]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"net/{head}.{2 * i}.weight"] = (b, a)
            shapes[f"net/{head}.{2 * i}.bias"] = (b,)
    return shapes


def greedy_policy(state: dict, cfg):
    """The most probable action of a checkpoint's policy network (``net/*``)."""
    import torch

    from mpirl.algos.a2c.learner import make_network
    from mpirl.envs import make_env
    from mpirl.torch_state import load_module_arrays

    probe = make_env(cfg.env)
    net = make_network(cfg.agent, *_dims(probe))
    probe.close()
    load_module_arrays("net", net, state)
    net.eval()

    def policy(obs):
        with torch.no_grad():
            return int(net.actor(torch.as_tensor(np.asarray(obs, np.float32).reshape(1, -1))).argmax())

    return policy


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.a2c.run import train as run

    return run(ctx)

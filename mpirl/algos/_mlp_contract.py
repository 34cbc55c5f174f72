"""The module contract pieces shared by the MLP algorithms (dqn, apex, impala, a2c, a3c, gossip_a2c).

Vector observations in, discrete actions out: the same environment check,
the same network input/output sizes, and a greedy policy that loads a
network from a checkpoint's arrays and takes the argmax of one head.
"""
from __future__ import annotations

import numpy as np

from mpirl.errors import ConfigError


def check_box_discrete(cfg, env) -> None:
    """An MLP over a flat observation with a discrete head needs a Box observation space and Discrete actions."""
    from gymnasium import spaces

    if not isinstance(env.observation_space, spaces.Box):
        raise ConfigError(f"algo {cfg.algo!r} needs a Box observation space; env {cfg.env.id!r} has "
                          f"{env.observation_space} (key 'env.id')")
    if not isinstance(env.action_space, spaces.Discrete):
        raise ConfigError(f"algo {cfg.algo!r} needs a Discrete action space; env {cfg.env.id!r} has "
                          f"{env.action_space} (key 'env.id')")


def dims(env) -> tuple[int, int]:
    """(flat observation size, number of actions) of an environment."""
    return int(np.prod(env.observation_space.shape)), int(env.action_space.n)


def argmax_policy(state: dict, cfg, make_network, prefix: str, head=lambda net: net):
    """Greedy policy of the network ``make_network(cfg.agent, obs_dim, n_actions)`` saved under ``prefix/``.

    ``head(net)`` picks the module whose outputs are argmax-ed (the Q-network
    itself, or an actor-critic's policy head).
    """
    import torch

    from mpirl.envs import make_env
    from mpirl.torch_state import load_module_arrays

    probe = make_env(cfg.env)
    net = make_network(cfg.agent, *dims(probe))
    probe.close()
    load_module_arrays(prefix, net, state)
    net.eval()
    scorer = head(net)

    def policy(obs):
        with torch.no_grad():
            return int(scorer(torch.as_tensor(np.asarray(obs, np.float32).reshape(1, -1))).argmax())

    return policy

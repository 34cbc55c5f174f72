"""The module contract every torch algorithm shares: environment check, state shapes, greedy policy.

An algorithm package declares ``SUPPORTS`` (the observation and action kinds
it handles), ``NETWORK_PREFIX`` (where its evaluated network lives in a
checkpoint) and ``network_config(cfg)``; these three functions do the rest
from the environment's :class:`~mpirl.specs.EnvSpec` and
:func:`mpirl.networks.make_networks`, for vectors, pixels, discrete or
continuous actions alike.
"""
from __future__ import annotations

import numpy as np

from mpirl.errors import ConfigError
from mpirl.specs import env_spec


def spec_of(cfg, env, supports: dict):
    """``env``'s spec, checked against ``supports``; errors name ``env.id``."""
    try:
        spec = env_spec(env)
    except TypeError as e:
        raise ConfigError(f"algo {cfg.algo!r} cannot use env {cfg.env.id!r}: {e} (key 'env.id')", key="env.id") from None
    if spec.obs_kind not in supports["obs"]:
        raise ConfigError(f"algo {cfg.algo!r} handles {'/'.join(supports['obs'])} observations; env {cfg.env.id!r} has "
                          f"{spec.obs_kind} observations {env.observation_space} (key 'env.id')", key="env.id")
    if spec.action.kind not in supports["action"]:
        raise ConfigError(f"algo {cfg.algo!r} needs a {' or '.join(k.capitalize() for k in supports['action'])} "
                          f"action space; env {cfg.env.id!r} has {env.action_space} (key 'env.id')", key="env.id")
    return spec


def check_env(cfg, env, supports: dict, network_config) -> None:
    """The environment's spaces suit the algorithm.

    Whether its network can be built (encoder and distribution resolve) is
    :func:`state_shapes`'s to say: validation calls it next, and building the
    network once is enough.
    """
    spec_of(cfg, env, supports)


def state_shapes(cfg, env, supports: dict, network_config, prefix: str) -> dict:
    """Shapes of the network's tensors under ``prefix/``, which a resumed checkpoint must match.

    The network is built on torch's meta device: shapes without memory or
    initialisation cost.
    """
    import torch

    from mpirl.networks import make_networks

    spec = spec_of(cfg, env, supports)
    with torch.device("meta"):
        net = make_networks(spec, network_config(cfg.agent))
    return {f"{prefix}/{k}": tuple(v.shape) for k, v in net.state_dict().items()}


def greedy_policy(state: dict, cfg, network_config, prefix: str):
    """The greedy policy (``net.greedy``: the distribution's mode, or the Q argmax) of a checkpoint's network."""
    import torch

    from mpirl.envs import make_env
    from mpirl.networks import make_networks
    from mpirl.torch_state import load_module_arrays

    probe = make_env(cfg.env)
    spec = env_spec(probe)
    probe.close()
    net = make_networks(spec, network_config(cfg.agent))
    load_module_arrays(prefix, net, state)
    net.eval()

    to_env = getattr(getattr(net, "dist", None), "to_env", None)

    def policy(obs):
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs, dtype=spec.obs_dtype).reshape(1, *spec.obs_shape))
            if spec.action.kind == "discrete":
                return int(net.greedy(x)[0])
            action = net.greedy(x)[0].numpy()
            return to_env(action) if to_env is not None else action

    return policy


def functions(supports: dict, network_config, prefix: str):
    """``(check_env, state_shapes, greedy_policy)`` of an algorithm package, bound to its declarations."""

    def check(cfg, env) -> None:
        """The environment's spaces suit the algorithm."""
        check_env(cfg, env, supports, network_config)

    def shapes(cfg, env) -> dict:
        """Shapes of the evaluated network's tensors, which a resumed checkpoint must match."""
        return state_shapes(cfg, env, supports, network_config, prefix)

    def greedy(state: dict, cfg):
        """The greedy policy of a checkpoint's network."""
        return greedy_policy(state, cfg, network_config, prefix)

    return check, shapes, greedy

"""The MLP networks by their historical names, built from :mod:`mpirl.networks` (same layers and weights).

``QNetwork(obs_dim, n, hidden, dueling)`` and ``ActorCritic(obs_dim, n,
hidden)`` take a float batch ``[B, obs_dim]``; new code calls
:func:`mpirl.networks.make_networks` with an environment spec instead.
"""
from __future__ import annotations

from mpirl.networks import NetworkConfig, make_networks, mlp
from mpirl.networks.heads import PolicyValueNet, QNet
from mpirl.specs import DiscreteSpec, EnvSpec

__all__ = ["ActorCritic", "QNetwork", "mlp"]


def _vector_spec(obs_dim: int, num_actions: int) -> EnvSpec:
    import numpy as np

    return EnvSpec((int(obs_dim),), np.dtype(np.float32), DiscreteSpec(int(num_actions)))


def QNetwork(obs_dim: int, num_actions: int, hidden: tuple = (256, 256), dueling: bool = False) -> QNet:
    """A Q-network over flat observations (:class:`~mpirl.networks.heads.QNet` with an MLP torso)."""
    if not hidden:
        raise ValueError("hidden must name at least one layer size")
    return make_networks(_vector_spec(obs_dim, num_actions), NetworkConfig("q", tuple(hidden), "relu", dueling))


def ActorCritic(obs_dim: int, num_actions: int, hidden: tuple = (64, 64)) -> PolicyValueNet:
    """Separate tanh policy and value MLPs returning ``(logits [B, A], values [B])``."""
    return make_networks(_vector_spec(obs_dim, num_actions), NetworkConfig("policy_value", tuple(hidden), "tanh"))

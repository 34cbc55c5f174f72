"""Networks composed of an encoder and a head: Q-values (plain or dueling), and policy-value towers.

Every network takes observations ``[*lead, *obs_shape]`` in their own dtype
(any number of leading dimensions, e.g. ``[T+1, B]`` of an unroll) and returns
outputs with the same leading dimensions. ``policy(obs)`` gives what an actor
needs (the distribution's parameters, or Q-values); learners call ``forward``.
"""
from __future__ import annotations

import torch
from torch import nn


def _split(obs: torch.Tensor, obs_ndim: int) -> tuple[tuple, torch.Tensor]:
    lead = tuple(obs.shape[: obs.ndim - obs_ndim])
    return lead, obs.reshape(-1, *obs.shape[obs.ndim - obs_ndim:])


class Tower(nn.Sequential):
    """An encoder followed by a linear head of ``out_dim`` outputs, as one Sequential.

    An encoder that is itself a Sequential with a ``prepare`` method (the MLP
    encoder) has its layers spliced in, so the tower's parameter names are
    flat (``0.weight``, ``2.weight``, ... for an MLP); any other encoder module
    becomes child ``0`` and the head child ``1``.
    """

    def __init__(self, encoder: nn.Module, out_dim: int, obs_ndim: int):
        self._spliced = isinstance(encoder, nn.Sequential) and hasattr(encoder, "prepare")
        head = nn.Linear(encoder.out_dim, out_dim)
        super().__init__(*(list(encoder) if self._spliced else [encoder]), head)
        self.prepare = encoder.prepare if self._spliced else (lambda x: x)
        self.obs_ndim = obs_ndim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead, flat = _split(obs, self.obs_ndim)
        return super().forward(self.prepare(flat)).reshape(*lead, -1)


class PolicyValueNet(nn.Module):
    """Separate policy and value towers (``actor``, ``critic``): ``forward(obs) -> (params, values)``.

    Separate towers (tanh, as in common PPO setups for vector observations)
    keep the value loss's scale from disturbing the policy's features. The
    policy tower outputs ``dist.num_params`` values: the action distribution's
    parameters. ``make_encoder()`` builds one encoder.
    """

    def __init__(self, make_encoder, dist, obs_ndim: int):
        super().__init__()
        self.dist = dist
        # make_encoder() is called once per tower, the policy's first: the layers are created (and drawn
        # from the seed) in the order encoder, head, encoder, head.
        self.actor = Tower(make_encoder(), dist.num_params, obs_ndim)
        self.critic = Tower(make_encoder(), 1, obs_ndim)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """The action distribution's parameters ``[*lead, num_params]``."""
        return self.actor(obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values ``[*lead]``."""
        return self.critic(obs).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(obs), self.critic(obs).squeeze(-1)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy actions: the mode of the policy's distribution."""
        return self.dist.mode(self.actor(obs))


class QNet(nn.Module):
    """Action values ``[*lead, A]`` from an encoder (``torso``); with ``dueling``, ``V + A - mean_a A``.

    Dueling (Wang et al. 2016) subtracts the mean advantage so that V and A are
    identifiable (the Q-values alone cannot say how to split a constant
    between them). ``policy`` is ``forward``: the greedy action is the argmax.
    """

    def __init__(self, torso: nn.Module, num_actions: int, obs_ndim: int, dueling: bool = False):
        super().__init__()
        self.dueling, self.obs_ndim = dueling, obs_ndim
        self.torso = torso
        if dueling:
            self.value_head = nn.Linear(torso.out_dim, 1)
            self.advantage_head = nn.Linear(torso.out_dim, num_actions)
        else:
            self.head = nn.Linear(torso.out_dim, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead, flat = _split(obs, self.obs_ndim)
        h = self.torso(flat)
        if self.dueling:
            adv = self.advantage_head(h)
            q = self.value_head(h) + adv - adv.mean(dim=-1, keepdim=True)
        else:
            q = self.head(h)
        return q.reshape(*lead, -1)

    policy = forward

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy actions: the argmax of the Q-values."""
        return self.forward(obs).argmax(dim=-1)

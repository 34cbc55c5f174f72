"""Networks composed of an encoder and a head: Q-values (plain or dueling), and policy-value towers.

Every network takes observations ``[*lead, *obs_shape]`` in their own dtype
(any number of leading dimensions, e.g. ``[T+1, B]`` of an unroll) and returns
outputs with the same leading dimensions. ``policy(obs)`` gives what an actor
needs (the distribution's parameters, or Q-values); learners call ``forward``.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _split(obs: torch.Tensor, obs_ndim: int) -> tuple[tuple, torch.Tensor]:
    lead = tuple(obs.shape[: obs.ndim - obs_ndim])
    return lead, obs.reshape(-1, *obs.shape[obs.ndim - obs_ndim:])


def policy_head(dist, in_dim: int) -> nn.Module:
    """The layer from features to ``dist``'s parameters: ``dist.head(in_dim)``, or a linear layer for a user's
    distribution class without one."""
    make = getattr(dist, "head", None)
    return make(in_dim) if callable(make) else nn.Linear(in_dim, dist.num_params)


class Tower(nn.Sequential):
    """An encoder followed by a head (a linear layer of ``out`` outputs, or the module ``out``), for any
    leading dimensions.

    An encoder that is a Sequential with a ``prepare`` method (a flattening
    MLP encoder) has its layers spliced in, so the parameter names stay flat;
    any other encoder module becomes child ``0`` and the head child ``1``.
    """

    def __init__(self, encoder: nn.Module, out, obs_ndim: int):
        spliced = isinstance(encoder, nn.Sequential) and callable(getattr(encoder, "prepare", None))
        head = nn.Linear(encoder.out_dim, out) if isinstance(out, int) else out
        super().__init__(*(list(encoder) if spliced else [encoder]), head)
        self.prepare = encoder.prepare if spliced else (lambda x: x)
        self.obs_ndim = obs_ndim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.ndim == self.obs_ndim + 1:  # a plain batch (every actor step): no reshapes
            return super().forward(self.prepare(obs))
        lead, flat = _split(obs, self.obs_ndim)
        return super().forward(self.prepare(flat)).reshape(*lead, -1)


def tower(encoder: nn.Module, out, obs_ndim: int) -> nn.Sequential:
    """``encoder`` then a head: a linear layer of ``out`` outputs, or the module ``out``.

    An MLP encoder of flat float32 vectors (``prepare`` None) gives a plain
    Sequential of its layers and the head: nn.Linear takes any leading
    dimensions, and an actor step then costs what a bare MLP costs. Any
    other encoder gives a :class:`Tower`.
    """
    if isinstance(encoder, nn.Sequential) and hasattr(encoder, "prepare") and encoder.prepare is None:
        return nn.Sequential(*encoder, nn.Linear(encoder.out_dim, out) if isinstance(out, int) else out)
    return Tower(encoder, out, obs_ndim)


class PolicyValueNet(nn.Module):
    """Separate policy and value towers (``actor``, ``critic``): ``forward(obs) -> (params, values)``.

    Separate towers (tanh, as in common PPO setups for vector observations)
    keep the value loss's scale from disturbing the policy's features. The
    policy tower outputs ``dist.num_params`` values: the action distribution's
    parameters. ``make_encoder()`` builds one encoder.
    """

    def __init__(self, make_encoder, dist, obs_ndim: int):
        super().__init__()
        self.dist, self.obs_ndim = dist, obs_ndim
        # make_encoder() is called once per tower, the policy's first: the layers are created (and drawn
        # from the seed) in the order encoder, head, encoder, head.
        enc = make_encoder()
        self.actor = tower(enc, policy_head(dist, enc.out_dim), obs_ndim)
        self.critic = tower(make_encoder(), 1, obs_ndim)
        # policy(obs) is the actor tower itself: one module call per acting step, not two. Set past
        # nn.Module's registration so the tower is not listed (and saved) twice.
        object.__setattr__(self, "policy", self.actor)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:  # replaced per instance by the actor tower
        """The action distribution's parameters ``[*lead, num_params]``."""
        return self.actor(obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values ``[*lead]``."""
        return self.critic(obs).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if obs.ndim > self.obs_ndim + 1:
            # An unroll [T+1, B, ...]: one 2-D batch through the towers (a 3-D Linear's backward is slower).
            lead, flat = _split(obs, self.obs_ndim)
            params, values = self.actor(flat), self.critic(flat)
            return params.reshape(*lead, -1), values.reshape(lead)
        return self.actor(obs), self.critic(obs).squeeze(-1)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy actions: the mode of the policy's distribution."""
        return self.dist.mode(self.actor(obs))


class SharedPolicyValueNet(nn.Module):
    """One encoder feeding a policy head and a value head: ``forward(obs) -> (params, values)``.

    The layout of the IMPALA paper's networks and of PPO on Atari: on frames
    the encoder is most of the cost, and one encoder instead of two halves
    the learner's forward and backward passes. The value loss then shapes the
    policy's features too (its weight, ``baseline_cost`` or ``value_cost``,
    matters more). Layers are created in the order encoder, policy head,
    value head.
    """

    def __init__(self, encoder: nn.Module, dist, obs_ndim: int):
        super().__init__()
        self.dist, self.obs_ndim = dist, obs_ndim
        self.encoder = encoder
        self.policy_head = policy_head(dist, encoder.out_dim)
        self.value_head = nn.Linear(encoder.out_dim, 1)

    def _features(self, obs: torch.Tensor) -> tuple[tuple, torch.Tensor]:
        lead, flat = _split(obs, self.obs_ndim)
        return lead, self.encoder(flat)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """The action distribution's parameters ``[*lead, num_params]``."""
        lead, h = self._features(obs)
        return self.policy_head(h).reshape(*lead, -1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values ``[*lead]``."""
        lead, h = self._features(obs)
        return self.value_head(h).reshape(lead)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lead, h = self._features(obs)
        return self.policy_head(h).reshape(*lead, -1), self.value_head(h).reshape(lead)

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy actions: the mode of the policy's distribution."""
        return self.dist.mode(self.policy(obs))


def _layers(module: nn.Module) -> list:
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def orthogonal_init(net: nn.Module) -> None:
    """cleanRL's PPO initialisation: orthogonal weights of gain sqrt(2) and zero biases, the policy head's gain
    0.01 (a near-uniform first policy, Andrychowicz et al. 2021, "What matters in on-policy RL") and the value
    head's 1."""
    if any(p.is_meta for p in net.parameters()):  # shapes only (state_shapes): nothing to initialise
        return
    for m in _layers(net):
        nn.init.orthogonal_(m.weight, math.sqrt(2.0))
        nn.init.zeros_(m.bias)
    if isinstance(net, SharedPolicyValueNet):
        policy, value = net.policy_head, net.value_head
    else:
        policy, value = net.actor[-1], net.critic[-1]
    nn.init.orthogonal_(_layers(policy)[-1].weight, 0.01)
    nn.init.orthogonal_(_layers(value)[-1].weight, 1.0)


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
        plain = getattr(self.torso, "prepare", False) is None  # flat vectors: Linear takes any leading dims
        if plain or obs.ndim == self.obs_ndim + 1:
            return self._q(self.torso(obs))
        lead, flat = _split(obs, self.obs_ndim)
        return self._q(self.torso(flat)).reshape(*lead, -1)

    def _q(self, h: torch.Tensor) -> torch.Tensor:
        if not self.dueling:
            return self.head(h)
        adv = self.advantage_head(h)
        return self.value_head(h) + adv - adv.mean(dim=-1, keepdim=True)

    policy = forward

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy actions: the argmax of the Q-values."""
        return self.forward(obs).argmax(dim=-1)

"""Small torch networks for vector observations: an MLP builder, Q-networks, an actor-critic.

All take a float batch ``[B, obs_dim]``.
"""
from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers ``in_dim -> *hidden -> out_dim`` with ``activation`` between them (none after the last)."""
    sizes = (in_dim, *hidden, out_dim)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Action values ``[B, A]``; with ``dueling`` the head is ``V + A - mean_a A`` (Wang et al. 2016).

    Subtracting the mean advantage makes V and A identifiable (the Q-values
    alone cannot say how to split a constant between them).
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden: tuple[int, ...] = (256, 256), dueling: bool = False):
        super().__init__()
        if not hidden:
            raise ValueError("hidden must name at least one layer size")
        self.dueling = dueling
        # The torso ends with an activation so the heads see features, not a linear readout.
        self.torso = nn.Sequential(mlp(obs_dim, hidden[:-1], hidden[-1]), nn.ReLU())
        if dueling:
            self.value_head = nn.Linear(hidden[-1], 1)
            self.advantage_head = nn.Linear(hidden[-1], num_actions)
        else:
            self.head = nn.Linear(hidden[-1], num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.torso(obs)
        if not self.dueling:
            return self.head(h)
        adv = self.advantage_head(h)
        return self.value_head(h) + adv - adv.mean(dim=-1, keepdim=True)


class ActorCritic(nn.Module):
    """Separate policy and value MLPs returning ``(logits [B, A], values [B])``.

    Separate networks (tanh, as in common PPO setups for vector observations)
    keep the value loss's scale from disturbing the policy's features.
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden: tuple[int, ...] = (64, 64),
                 activation: type[nn.Module] = nn.Tanh):
        super().__init__()
        self.actor = mlp(obs_dim, hidden, num_actions, activation)
        self.critic = mlp(obs_dim, hidden, 1, activation)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(obs), self.critic(obs).squeeze(-1)

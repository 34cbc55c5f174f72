"""Action distributions: what a policy head's outputs (the distribution's parameters) mean.

A distribution family is a stateless object built from the action spec. Its
torch methods work on parameter tensors ``[..., num_params]``; ``sample`` works
in numpy with the actor's own Generator, whose state checkpoints capture.
Losses only see what these return (log-probabilities, entropies), so another
family (a diagonal Gaussian for Box actions) replaces this one without
touching a loss.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class Categorical:
    """A softmax over ``n`` discrete actions; its parameters are the ``n`` logits."""

    supports = ("discrete",)

    def __init__(self, action_spec):
        self.n = int(action_spec.n)

    @property
    def num_params(self) -> int:
        """How many outputs a policy head must produce: one logit per action."""
        return self.n

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a | params)`` ``[...]`` for integer ``actions`` ``[...]``."""
        return F.log_softmax(params, dim=-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def log_prob_and_entropy(self, params: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`log_prob` and :meth:`entropy` from one log-softmax."""
        log_probs = F.log_softmax(params, dim=-1)
        return (log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1),
                -(log_probs.exp() * log_probs).sum(-1))

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        """``H(pi(. | params))`` ``[...]``."""
        log_probs = F.log_softmax(params, dim=-1)
        return -(log_probs.exp() * log_probs).sum(-1)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The most probable action (the greedy policy)."""
        return params.argmax(dim=-1)

    def sample(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One action per row of ``params`` ``[N, n]``, drawn with ``rng``.

        Gumbel-max: argmax(logits + Gumbel noise) is a sample of
        softmax(logits), in one numpy pass.
        """
        gumbel = -np.log(-np.log(rng.random(params.shape)))
        return np.argmax(params + gumbel, axis=-1)


DISTRIBUTIONS = {"categorical": Categorical}

"""Action distributions: what a policy head's outputs (the distribution's parameters) mean.

A distribution family is a stateless object built from the action spec. Its
torch methods work on parameter tensors ``[..., num_params]``; ``sample`` works
in numpy with the actor's own Generator, whose state checkpoints capture.
Losses only see what these return (log-probabilities, entropies), so the
diagonal Gaussians for Box actions replace the Categorical without touching a
loss. ``head(in_dim)`` is the layer that produces the parameters from the
encoder's features, and ``to_env(actions)`` maps a sampled action to what the
environment is stepped with (the clip to a Box's bounds happens there and
only there: losses see the action as sampled).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Categorical:
    """A softmax over ``n`` discrete actions; its parameters are the ``n`` logits."""

    supports = ("discrete",)

    def __init__(self, action_spec):
        self.n = int(action_spec.n)

    @property
    def num_params(self) -> int:
        """How many outputs a policy head must produce: one logit per action."""
        return self.n

    def head(self, in_dim: int) -> nn.Module:
        """The policy head: a linear layer to the logits."""
        return nn.Linear(in_dim, self.n)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Actions as the environment takes them: the indices themselves."""
        return actions

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


class GaussianHead(nn.Module):
    """A linear layer to the means and a state-independent log standard deviation (cleanRL, Spinning Up).

    Its output is ``[..., 2 * dim]``: the means, then the log std broadcast
    to every row, so what an actor stores per step (the behaviour
    distribution's parameters) is complete on its own.
    """

    def __init__(self, in_dim: int, dim: int, log_std_init: float = 0.0):
        super().__init__()
        self.mean = nn.Linear(in_dim, dim)
        self.log_std = nn.Parameter(torch.full((dim,), float(log_std_init)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        mean = self.mean(h)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)


_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class DiagGaussian:
    """Independent normal distributions over a Box's ``dim`` components; parameters ``[means, log_stds]``.

    Actions are sampled unbounded; :meth:`to_env` clips them to the Box's
    bounds for the environment only, so log-probabilities and the policy
    gradient see the action that was drawn (cleanRL's and SB3's PPO).
    """

    supports = ("box",)

    def __init__(self, action_spec):
        self.shape = tuple(action_spec.shape)
        self.dim = int(np.prod(self.shape))
        self.low = np.asarray(action_spec.low, np.float32).reshape(self.shape)
        self.high = np.asarray(action_spec.high, np.float32).reshape(self.shape)

    @property
    def num_params(self) -> int:
        """Means and log standard deviations: ``2 * dim``."""
        return 2 * self.dim

    def head(self, in_dim: int) -> nn.Module:
        """The policy head: means from the features, a learned log std shared by all states."""
        return GaussianHead(in_dim, self.dim)

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return params[..., : self.dim], params[..., self.dim:]

    def _flat(self, actions: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return actions.reshape(*params.shape[:-1], self.dim).to(params.dtype)

    def _normal_log_prob(self, params: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        mean, log_std = self._split(params)
        z = (u - mean) * torch.exp(-log_std)
        return (-0.5 * z * z - log_std - _HALF_LOG_2PI).sum(-1)

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a | params)`` ``[...]``: the sum of the components' normal log-densities."""
        return self._normal_log_prob(params, self._flat(actions, params))

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        """``H = sum_i (log sigma_i + 0.5 log(2 pi e))`` ``[...]``."""
        return (self._split(params)[1] + 0.5 + _HALF_LOG_2PI).sum(-1)

    def log_prob_and_entropy(self, params: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`log_prob` and :meth:`entropy`."""
        return self.log_prob(params, actions), self.entropy(params)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The means (the greedy policy), shaped ``[..., *action_shape]``."""
        mean = self._split(params)[0]
        return mean.reshape(*mean.shape[:-1], *self.shape)

    def sample(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One action ``[*action_shape]`` per row of ``params`` ``[N, 2 * dim]``, drawn with ``rng``."""
        mean, log_std = params[..., : self.dim], params[..., self.dim:]
        u = mean + np.exp(log_std) * rng.standard_normal(mean.shape)
        return u.astype(np.float32).reshape(*params.shape[:-1], *self.shape)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Actions clipped to the Box's bounds."""
        return np.clip(actions, self.low, self.high)


class TanhGaussian(DiagGaussian):
    """A diagonal Gaussian squashed by tanh into the Box: ``a = low + (tanh(u) + 1) (high - low) / 2``.

    The stored action is the unsquashed ``u``, so no arctanh of a clipped
    value is ever taken. :meth:`log_prob` is the density of ``a`` (the
    Gaussian's, less ``log |da/du|``, Haarnoja et al. 2018, appendix C); the
    Jacobian does not depend on the parameters, so ratios and gradients equal
    the Gaussian's. The squashed distribution has no closed-form entropy:
    :meth:`entropy` is the Gaussian's (of ``u``), as a bonus that keeps the
    spread from collapsing. :meth:`mode` is ``u = mean``, squashed by
    :meth:`to_env`.
    """

    def __init__(self, action_spec):
        super().__init__(action_spec)
        self.scale = (self.high - self.low) / 2.0
        if not np.all(np.isfinite(self.scale)):
            raise ValueError("a tanh-squashed Gaussian needs finite action bounds")
        self._log_scale = float(np.log(self.scale).sum())

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a | params)`` of the squashed action ``a`` whose unsquashed value is ``actions``."""
        u = self._flat(actions, params)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|.
        log_det = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1) + self._log_scale
        return self._normal_log_prob(params, u) - log_det

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """``low + (tanh(u) + 1) (high - low) / 2``."""
        return (self.low + (np.tanh(actions) + 1.0) * self.scale).astype(np.float32)


DISTRIBUTIONS = {"categorical": Categorical, "gaussian": DiagGaussian, "tanh_gaussian": TanhGaussian}
#: What ``distribution = "auto"`` means for each action kind.
AUTO = {"discrete": "categorical", "box": "gaussian"}

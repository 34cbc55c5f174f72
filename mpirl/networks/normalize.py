"""Running normalisation: observations inside the network, rewards by the running return's spread.

The statistics are float32 buffers of the network (:class:`RunningNorm`), so
they travel with the weights in every flat vector (Bcast, weight
publication, replica fingerprints), are written into every checkpoint with
the network and are applied by ``mpirl eval`` without any extra code. They
change only in :meth:`RunningNorm.update`, from sums that the algorithm has
reduced over its ranks: every replica applies the same numbers.
:class:`RewardScaler` keeps the same arithmetic for the rewards a learner
trains on.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def moments(x: np.ndarray) -> np.ndarray:
    """``[n, sum x, sum x^2]`` over the first axis of ``x`` ``[n, ...]`` in float64 (``[2 * size + 1]``)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.concatenate([[float(len(x))], x.sum(0), (x * x).sum(0)])


def merge_moments(count: float, mean: np.ndarray, var: np.ndarray, sums: np.ndarray) -> tuple:
    """Running ``(count, mean, var)`` after a batch given as :func:`moments` sums (Chan et al. 1979).

    The batch's variance comes from its own sums, so merging many ranks' sums
    once is the same as merging each rank's batch in turn.
    """
    n = float(sums[0])
    if n <= 0:
        return count, mean, var
    d = (len(sums) - 1) // 2
    b_mean = sums[1:1 + d] / n
    b_var = np.maximum(sums[1 + d:] / n - b_mean * b_mean, 0.0)
    total = count + n
    delta = b_mean - mean
    new_mean = mean + delta * (n / total)
    new_var = (var * count + b_var * n + delta * delta * (count * n / total)) / total
    return total, new_mean, new_var


class RunningNorm(nn.Module):
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` with the running mean and variance of the observations.

    Starts as the identity (mean 0, variance 1, count 0). The statistics are
    buffers (``mean``, ``var``, ``count``), not parameters: no gradient
    touches them.
    """

    def __init__(self, shape: tuple, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.clip, self.eps = float(clip), float(eps)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.zeros(1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = (obs.to(torch.float32) - self.mean) / torch.sqrt(self.var + self.eps)
        return x.clamp(-self.clip, self.clip)

    def update(self, sums: np.ndarray) -> None:
        """Merge a batch given as (reduced) :func:`moments` sums into the statistics."""
        count, mean, var = merge_moments(float(self.count[0]), self.mean.double().cpu().numpy().ravel(),
                                         self.var.double().cpu().numpy().ravel(), sums)
        with torch.no_grad():  # in place: the buffers are views into the flat parameter vector
            self.mean.copy_(torch.from_numpy(mean).reshape(self.mean.shape))
            self.var.copy_(torch.from_numpy(var).reshape(self.var.shape))
            self.count.fill_(count)


class ObsNormalized(nn.Module):
    """A policy-value network whose observations pass through a :class:`RunningNorm` (``obs_norm``) first."""

    def __init__(self, net: nn.Module, obs_shape: tuple, clip: float = 10.0):
        super().__init__()
        self.obs_norm = RunningNorm(tuple(obs_shape), clip)
        self.net = net
        self.dist, self.obs_ndim = net.dist, net.obs_ndim

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """The action distribution's parameters of normalised observations."""
        return self.net.policy(self.obs_norm(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values of normalised observations."""
        return self.net.value(self.obs_norm(obs))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(self.obs_norm(obs))

    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy actions of normalised observations."""
        return self.net.greedy(self.obs_norm(obs))


class RewardScaler:
    """Rewards divided by the running standard deviation of the discounted return (gymnasium's ``NormalizeReward``,
    the reward scaling of cleanRL's and SB3's continuous-control PPO; Engstrom et al. 2020).

    ``returns`` holds each environment copy's discounted return so far
    (``G <- gamma G + r``, restarted at reset steps); its variance over every
    rank's steps is merged once per unroll from sums reduced with
    ``sum_reduce`` (None: this process only), so the replicas divide by the
    same number. The statistics are state (``state_arrays``); ``returns``
    is per-rank state.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8, sum_reduce=None):
        self.gamma, self.clip, self.eps, self.sum_reduce = float(gamma), float(clip), float(eps), sum_reduce
        self.returns = np.zeros(num_envs, np.float64)
        self.count, self.mean, self.var = 0.0, np.zeros(1), np.ones(1)

    def __call__(self, reward: np.ndarray, reset: np.ndarray) -> np.ndarray:
        """The scaled rewards ``[T, B]`` (float32) of an unroll whose steps flagged ``reset`` only reset a copy."""
        reset = np.asarray(reset, bool)
        seen = np.empty(reward.shape, np.float64)
        for t in range(len(reward)):
            self.returns = np.where(reset[t], 0.0, self.returns * self.gamma + reward[t])
            seen[t] = self.returns
        sums = moments(seen[~reset].reshape(-1, 1))
        if self.sum_reduce is not None:
            self.sum_reduce(sums)
        self.count, self.mean, self.var = merge_moments(self.count, self.mean, self.var, sums)
        scaled = np.asarray(reward, np.float64) / np.sqrt(self.var[0] + self.eps)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state_arrays(self, prefix: str = "reward_norm") -> dict:
        """The shared statistics as named arrays."""
        return {f"{prefix}/count": np.array([self.count]), f"{prefix}/mean": self.mean.copy(),
                f"{prefix}/var": self.var.copy()}

    def load_state_arrays(self, arrays: dict, prefix: str = "reward_norm") -> None:
        """Restore what :meth:`state_arrays` saved."""
        self.count = float(np.asarray(arrays[f"{prefix}/count"])[0])
        self.mean = np.asarray(arrays[f"{prefix}/mean"], np.float64).copy()
        self.var = np.asarray(arrays[f"{prefix}/var"], np.float64).copy()

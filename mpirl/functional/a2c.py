"""The advantage actor-critic loss (A2C/A3C, Mnih et al. 2016) on time-major unrolls.

Unrolls follow the layout of :mod:`mpirl.functional.impala`: observations
``x_0..x_T``; for t < T the reward r_t of the step from x_t, whether that step
terminated or truncated its episode, and ``reset[t]`` for the reset steps of
gymnasium's next-step autoreset (the step after an episode's end, which only
resets that copy and belongs to no episode).

n-step returns, backwards from the bootstrap ``R_T = V(x_T)``::

    R_t = V(x_t)                          if step t is a reset step
    R_t = r_t                             if step t terminated its episode
    R_t = r_t + gamma * R_{t+1}           otherwise

A truncated step is "otherwise": the next step is a reset step whose return is
V(x_{t+1}), the value of the ended episode's true final observation, so
truncation bootstraps from it while termination does not. Reset steps get no
loss, and their return is never summed into an earlier episode's.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class A2CLoss(NamedTuple):
    """The total loss (with gradient), its parts as detached scalars, and the n-step ``returns`` ``[T, B]``."""

    loss: torch.Tensor
    pg_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    returns: torch.Tensor


def n_step_returns(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor, reset: torch.Tensor,
                   gamma: float) -> torch.Tensor:
    """Bootstrapped n-step returns ``[T, B]`` (see the module docstring).

    ``values`` ``[T+1, B]`` are V(x_0..x_T) (detached by the caller if they
    should carry no gradient); the other inputs are ``[T, B]``.
    """
    T = rewards.shape[0]
    if values.shape[0] != T + 1:
        raise ValueError(f"n_step_returns: values need T+1 = {T + 1} rows, got {values.shape[0]}")
    disc = gamma * (~terminated.bool()).to(values.dtype)
    is_reset = reset.bool()
    out = torch.empty_like(values[:T])
    ret = values[T]
    for t in range(T - 1, -1, -1):  # T is an unroll length (tens): a loop over rows of B is cheap
        ret = torch.where(is_reset[t], values[t], rewards[t] + disc[t] * ret)
        out[t] = ret
    return out


def a2c_loss(log_pi: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor, rewards: torch.Tensor,
             terminated: torch.Tensor, reset: torch.Tensor, gamma: float, value_cost: float,
             entropy_cost: float) -> A2CLoss:
    """pg loss + ``value_cost`` * value loss - ``entropy_cost`` * entropy, means over the non-reset steps.

    ``log_pi`` ``[T, B]`` are the log-probabilities of the actions taken (with
    gradient) and ``entropy`` ``[T, B]`` the policy's entropy at each step,
    from any action distribution; ``values`` ``[T+1, B]`` are the network's
    values of the unroll's observations; ``rewards``, ``terminated``, ``reset``
    are ``[T, B]``. ``pg_loss = -mean(log pi(a_t|x_t) * (R_t - V(x_t)))`` with
    the advantage detached, ``value_loss = mean(0.5 (R_t - V(x_t))^2)`` with
    R_t detached.
    """
    T = log_pi.shape[0]
    if values.shape[0] != T + 1:
        raise ValueError(f"a2c_loss: values need T+1 = {T + 1} rows, got {values.shape[0]}")
    if entropy.shape != log_pi.shape or rewards.shape != log_pi.shape:
        raise ValueError(f"a2c_loss: log_pi, entropy and rewards must share a [T, B] shape, got "
                         f"{tuple(log_pi.shape)}, {tuple(entropy.shape)}, {tuple(rewards.shape)}")
    v = values[:T]
    real = (~reset.bool()).to(v.dtype)
    count = real.sum().clamp(min=1.0)
    returns = n_step_returns(rewards.to(v.dtype) * real, values.detach(), terminated, reset, gamma)
    advantages = (returns - v).detach()
    pg_loss = -(log_pi * advantages * real).sum() / count
    value_loss = 0.5 * ((returns - v) ** 2 * real).sum() / count
    entropy = (entropy * real).sum() / count
    loss = pg_loss + value_cost * value_loss - entropy_cost * entropy
    return A2CLoss(loss, pg_loss.detach(), value_loss.detach(), entropy.detach(), returns)

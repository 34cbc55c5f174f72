"""PPO's maths (Schulman et al. 2017): GAE on time-major unrolls and the clipped surrogate loss.

Unrolls follow the layout of :mod:`mpirl.functional.a2c`: observations
``x_0..x_T`` and, for t < T, reward r_t, whether step t terminated or
truncated its episode, and ``reset[t]`` for the reset steps of gymnasium's
next-step autoreset (they belong to no episode).

Generalized advantage estimation (the paper's equations 11-12), backwards
from A_T = 0::

    delta_t = r_t + gamma * (1 - terminated_t) * V(x_{t+1}) - V(x_t)
    A_t     = 0                                          if step t is a reset step
    A_t     = delta_t + gamma * lambda * (1 - terminated_t) * A_{t+1}   otherwise

A truncated step bootstraps from V(x_{t+1}), the ended episode's true final
observation, and its trace stops there because the next step is a reset step
(A = 0); a terminated step does neither. The value targets are A_t + V(x_t).
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class Advantages(NamedTuple):
    """GAE advantages and the value targets ``returns = advantages + V(x_t)``, both ``[T, B]``."""

    advantages: torch.Tensor
    returns: torch.Tensor


class PPOLoss(NamedTuple):
    """The total loss (with gradient), its parts as detached scalars, and two diagnostics of the step size.

    ``approx_kl`` is the estimator mean((r - 1) - log r) of KL(old || new);
    ``clip_fraction`` the share of samples whose ratio left [1 - eps, 1 + eps].
    """

    loss: torch.Tensor
    pg_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def gae(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor, reset: torch.Tensor,
        gamma: float, lam: float) -> Advantages:
    """GAE(gamma, lambda) advantages of an unroll (see the module docstring); no gradient flows.

    ``values`` ``[T+1, B]`` are V(x_0..x_T); the other inputs are ``[T, B]``.
    """
    T = rewards.shape[0]
    if values.shape[0] != T + 1 or values.shape[1:] != rewards.shape[1:]:
        raise ValueError(f"gae: values must be [T+1, B] = {[T + 1, *rewards.shape[1:]]} for rewards "
                         f"{list(rewards.shape)}, got {list(values.shape)}")
    if terminated.shape != rewards.shape or reset.shape != rewards.shape:
        raise ValueError(f"gae: terminated and reset must be {list(rewards.shape)}, got "
                         f"{list(terminated.shape)} and {list(reset.shape)}")
    values = values.detach()
    live = (~terminated.bool()).to(values.dtype)
    is_reset = reset.bool()
    rewards = rewards.to(values.dtype).masked_fill(is_reset, 0.0)
    deltas = rewards + gamma * live * values[1:] - values[:T]
    adv = torch.empty_like(values[:T])
    last = torch.zeros_like(values[0])
    for t in range(T - 1, -1, -1):  # T is an unroll length (a few hundred at most): rows of B at a time
        last = torch.where(is_reset[t], torch.zeros_like(last), deltas[t] + gamma * lam * live[t] * last)
        adv[t] = last
    return Advantages(adv, adv + values[:T])


def ppo_loss(log_pi: torch.Tensor, log_pi_old: torch.Tensor, advantages: torch.Tensor, values: torch.Tensor,
             values_old: torch.Tensor, returns: torch.Tensor, entropy: torch.Tensor, clip_coef: float,
             value_cost: float, entropy_cost: float, value_clip: float | None = None) -> PPOLoss:
    """-L^CLIP + ``value_cost`` * L^VF - ``entropy_cost`` * S, means over a minibatch (the paper's eq. 9).

    Every input is ``[N]`` (the samples of one minibatch, reset steps left
    out): ``log_pi`` and ``values`` from the network being updated (with
    gradient), ``log_pi_old``, ``values_old``, ``advantages`` and ``returns``
    from the rollout (advantages already normalised if that is wanted).
    L^CLIP = mean(min(r A, clip(r, 1 - eps, 1 + eps) A)) with r = pi / pi_old
    (eq. 7). L^VF = mean(0.5 (V - R)^2); with ``value_clip`` c, the
    pessimistic mean(0.5 max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2))
    of the PPO reference implementation.
    """
    shape = log_pi.shape
    for name, x in (("log_pi_old", log_pi_old), ("advantages", advantages), ("values", values),
                    ("values_old", values_old), ("returns", returns), ("entropy", entropy)):
        if x.shape != shape:
            raise ValueError(f"ppo_loss: {name} must have log_pi's shape {list(shape)}, got {list(x.shape)}")
    advantages, returns = advantages.detach(), returns.detach()
    log_ratio = log_pi - log_pi_old.detach()
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef) * advantages)
    pg_loss = -surrogate.mean()
    err = (values - returns) ** 2
    if value_clip is not None:
        clipped = values_old.detach() + (values - values_old.detach()).clamp(-value_clip, value_clip)
        err = torch.max(err, (clipped - returns) ** 2)
    value_loss = 0.5 * err.mean()
    entropy = entropy.mean()
    loss = pg_loss + value_cost * value_loss - entropy_cost * entropy
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clip_fraction = ((ratio - 1.0).abs() > clip_coef).to(ratio.dtype).mean()
    return PPOLoss(loss, pg_loss.detach(), value_loss.detach(), entropy.detach(), approx_kl, clip_fraction)

"""The IMPALA actor-critic loss on time-major unrolls, with gymnasium's next-step autoreset.

An actor's unroll stores observations ``x_0..x_T`` and, for t < T, the action
a_t taken in x_t, reward r_t, and whether the episode terminated or was
truncated by that step. With next-step autoreset the step after an episode's
end only resets that copy: its action is ignored, its reward is 0, and the
observation it starts from is the ended episode's true final observation.
Such *reset steps* (``reset[t]``) are not transitions of any episode, so here
they get importance weight 0 and discount 0: the V-trace recursion stops at
them, their own target is V(x_t) itself, and they carry no loss. The step
before them bootstraps from V(x_{t+1}), the final observation, when it was
truncated, and not at all (discount 0) when it terminated.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from mpirl.functional.vtrace import vtrace


class ImpalaLoss(NamedTuple):
    """The total loss (with gradient) and its parts as detached scalars; ``vs`` are the V-trace targets."""

    loss: torch.Tensor
    pg_loss: torch.Tensor
    baseline_loss: torch.Tensor
    entropy: torch.Tensor
    vs: torch.Tensor


def unroll_discounts(terminated: torch.Tensor, reset: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-step discounts ``[T, B]``: gamma, 0 where the step terminated its episode or is a reset step."""
    return gamma * (~(terminated.bool() | reset.bool())).to(torch.float32)


def unroll_log_rhos(log_pi: torch.Tensor, log_mu: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
    """``log pi(a_t|x_t) - log mu(a_t|x_t)`` ``[T, B]``, and -inf (rho = 0) at reset steps.

    rho = 0 zeroes a reset step's TD error and its trace coefficient c_t, which
    a zero discount alone would not: its delta would still be -V(x_t).
    """
    return (log_pi - log_mu).masked_fill(reset.bool(), float("-inf"))


def impala_loss(log_pi: torch.Tensor, log_mu: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor,
                rewards: torch.Tensor, terminated: torch.Tensor, reset: torch.Tensor, gamma: float,
                baseline_cost: float, entropy_cost: float, clip_rho_threshold: float = 1.0,
                clip_pg_rho_threshold: float = 1.0) -> ImpalaLoss:
    """pg loss + ``baseline_cost`` * value loss - ``entropy_cost`` * entropy, means over the non-reset steps.

    ``log_pi`` ``[T, B]`` are the learner's log-probabilities of the actions
    taken (with gradient), ``log_mu`` the behaviour policy's, ``entropy``
    ``[T, B]`` the learner's policy entropy at each step; ``values``
    ``[T+1, B]`` are the learner's values of all T+1 observations (the last
    row bootstraps); the other inputs are ``[T, B]``. Any action distribution
    gives these (:mod:`mpirl.networks.distributions`). Means rather than the
    paper's sums keep the learning rate independent of the batch size.
    """
    T = log_pi.shape[0]
    if values.shape[0] != T + 1:
        raise ValueError(f"impala_loss: values need T+1 = {T + 1} rows, got {values.shape[0]}")
    if log_mu.shape != log_pi.shape or entropy.shape != log_pi.shape or rewards.shape != log_pi.shape:
        raise ValueError(f"impala_loss: log_pi, log_mu, entropy and rewards must share a [T, B] shape, got "
                         f"{tuple(log_pi.shape)}, {tuple(log_mu.shape)}, {tuple(entropy.shape)}, "
                         f"{tuple(rewards.shape)}")
    v = values[:T]
    real = (~reset.bool()).to(v.dtype)
    count = real.sum().clamp(min=1.0)
    log_rhos = unroll_log_rhos(log_pi.detach(), log_mu, reset)
    rewards = rewards.to(v.dtype) * real  # a reset step's reward is 0 already; keep it so for any env
    vt = vtrace(log_rhos, unroll_discounts(terminated, reset, gamma).to(v.dtype), rewards, v.detach(),
                values[T].detach(), clip_rho_threshold=clip_rho_threshold, clip_c_threshold=1.0,
                clip_pg_rho_threshold=clip_pg_rho_threshold)
    pg_loss = -(log_pi * vt.pg_advantages * real).sum() / count
    baseline_loss = 0.5 * ((vt.vs - v) ** 2 * real).sum() / count
    entropy = (entropy * real).sum() / count
    loss = pg_loss + baseline_cost * baseline_loss - entropy_cost * entropy
    return ImpalaLoss(loss, pg_loss.detach(), baseline_loss.detach(), entropy.detach(), vt.vs)

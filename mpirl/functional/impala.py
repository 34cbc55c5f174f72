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
import torch.nn.functional as F

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


def unroll_log_rhos(target_logits: torch.Tensor, behaviour_logits: torch.Tensor, actions: torch.Tensor,
                    reset: torch.Tensor) -> torch.Tensor:
    """``log pi(a_t|x_t) - log mu(a_t|x_t)`` ``[T, B]``, and -inf (rho = 0) at reset steps.

    rho = 0 zeroes a reset step's TD error and its trace coefficient c_t, which
    a zero discount alone would not: its delta would still be -V(x_t).
    """
    idx = actions.long().unsqueeze(-1)
    log_pi = F.log_softmax(target_logits, dim=-1).gather(-1, idx).squeeze(-1)
    log_mu = F.log_softmax(behaviour_logits, dim=-1).gather(-1, idx).squeeze(-1)
    return (log_pi - log_mu).masked_fill(reset.bool(), float("-inf"))


def impala_loss(logits: torch.Tensor, values: torch.Tensor, behaviour_logits: torch.Tensor, actions: torch.Tensor,
                rewards: torch.Tensor, terminated: torch.Tensor, reset: torch.Tensor, gamma: float,
                baseline_cost: float, entropy_cost: float, clip_rho_threshold: float = 1.0,
                clip_pg_rho_threshold: float = 1.0) -> ImpalaLoss:
    """pg loss + ``baseline_cost`` * value loss - ``entropy_cost`` * entropy, means over the non-reset steps.

    ``logits`` ``[T+1, B, A]`` and ``values`` ``[T+1, B]`` are the learner's
    outputs on all T+1 observations (the last row bootstraps); the other inputs
    are ``[T, B]`` (``behaviour_logits`` ``[T, B, A]``). Means rather than the
    paper's sums keep the learning rate independent of the batch size.
    """
    T = actions.shape[0]
    if logits.shape[0] != T + 1 or values.shape[0] != T + 1:
        raise ValueError(f"impala_loss: logits and values need T+1 = {T + 1} rows, got {logits.shape[0]} "
                         f"and {values.shape[0]}")
    target_logits, v = logits[:T], values[:T]
    real = (~reset.bool()).to(v.dtype)
    count = real.sum().clamp(min=1.0)
    log_rhos = unroll_log_rhos(target_logits.detach(), behaviour_logits, actions, reset)
    rewards = rewards.to(v.dtype) * real  # a reset step's reward is 0 already; keep it so for any env
    vt = vtrace(log_rhos, unroll_discounts(terminated, reset, gamma).to(v.dtype), rewards, v.detach(),
                values[T].detach(), clip_rho_threshold=clip_rho_threshold, clip_c_threshold=1.0,
                clip_pg_rho_threshold=clip_pg_rho_threshold)
    log_probs = F.log_softmax(target_logits, dim=-1)
    action_log_probs = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    pg_loss = -(action_log_probs * vt.pg_advantages * real).sum() / count
    baseline_loss = 0.5 * ((vt.vs - v) ** 2 * real).sum() / count
    entropy = (-(log_probs.exp() * log_probs).sum(-1) * real).sum() / count
    loss = pg_loss + baseline_cost * baseline_loss - entropy_cost * entropy
    return ImpalaLoss(loss, pg_loss.detach(), baseline_loss.detach(), entropy.detach(), vt.vs)

"""DQN maths as pure functions: n-step transition assembly, double-Q targets, the Huber TD loss.

References:
  Mnih et al. 2015, "Human-level control through deep reinforcement learning" (DQN, Huber TD loss).
  van Hasselt, Guez & Silver 2016, "Deep Reinforcement Learning with Double Q-learning".
  Hessel et al. 2018, "Rainbow: Combining Improvements in Deep Reinforcement Learning" (n-step targets).
  Schaul et al. 2016, "Prioritized Experience Replay" (importance weights, |TD error| priorities).

``n_step_transitions`` runs on actors and is numpy; the learner functions take
torch tensors. Nothing here holds state, draws random numbers or touches MPI.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


class NStep(NamedTuple):
    """n-step windows of one unroll, all ``[T, B]``, indexed by the window's start time t.

    ``returns``: sum_{k<m} gamma^k r_{t+k}.  ``discounts``: gamma^m, or 0 if the
    window ended by termination.  ``bootstrap_index``: t + m, the index into
    obs_{0..T} to bootstrap from.  ``valid``: False where the window was cut
    short only by the end of the unroll.
    """

    returns: np.ndarray
    discounts: np.ndarray
    bootstrap_index: np.ndarray
    valid: np.ndarray


class DQNLoss(NamedTuple):
    """Scalar ``loss`` (differentiable) and per-sample ``td_errors`` [B] (detached)."""

    loss: torch.Tensor
    td_errors: torch.Tensor


def n_step_transitions(rewards_t, terminated_t, truncated_t, gamma: float, n: int) -> NStep:
    """Assemble n-step returns for every start time of a time-major unroll (Hessel et al. 2018).

    Inputs are ``[T, B]`` arrays from T steps of B vectorised environments:
    ``rewards_t[t, b]`` is the reward of the step taken from obs_t, and
    ``terminated_t``/``truncated_t`` flag that this step ended the episode.
    A window never crosses an episode end. The caller's unroll follows
    gymnasium's next-step autoreset (as :class:`mpirl.rollout.NStepActor`
    does): after an episode's end the stored obs_{t+1} is that episode's
    true final observation, and the next step only resets the copy; the
    caller zeroes that reset step's reward and flags and drops the windows
    that start at it.

    For each (t, b) the window length is
    ``m = min(n, steps up to and including the first terminated/truncated step at or after t, T - t)``
    and, with all outputs ``[T, B]``:

    * ``returns[t, b] = sum_{k=0}^{m-1} gamma^k rewards_t[t+k, b]``;
    * ``discounts[t, b] = 0`` if step t+m-1 is a termination, else ``gamma^m``
      (a truncation still bootstraps, from the episode's final observation);
    * ``bootstrap_index[t, b] = t + m`` (int64, in 1..T): the target is
      ``returns + discounts * Q(obs_{t+m})``. Where step t+m-1 was truncated,
      obs_{t+m} is the episode's final observation under next-step autoreset,
      so truncation bootstraps from it; where it terminated, the discount is 0
      and the observation is irrelevant;
    * ``valid[t, b]`` is False iff ``m < n`` and the window reached the end of
      the unroll without an episode end. Those windows are partial (their
      other outputs hold the partial sums so far) and must be completed with
      the next unroll; a window of exactly n steps ending at T is valid.

    ``returns`` and ``discounts`` have dtype ``result_type(rewards_t, float32)``.
    """
    rewards_t = np.asarray(rewards_t)
    terminated_t = np.asarray(terminated_t)
    truncated_t = np.asarray(truncated_t)
    if rewards_t.ndim != 2:
        raise ValueError(f"rewards_t must be time-major [T, B], got shape {rewards_t.shape}")
    for name, arr in (("terminated_t", terminated_t), ("truncated_t", truncated_t)):
        if arr.shape != rewards_t.shape:
            raise ValueError(f"{name} must have the shape of rewards_t {rewards_t.shape}, got {arr.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")

    T, B = rewards_t.shape
    dtype = np.result_type(rewards_t.dtype, np.float32)
    terminated_t = terminated_t.astype(bool)
    ended_t = terminated_t | truncated_t.astype(bool)
    rewards = rewards_t.astype(np.float64)

    returns = np.zeros((T, B))
    m = np.zeros((T, B), dtype=np.int64)
    by_termination = np.zeros((T, B), dtype=bool)
    by_episode_end = np.zeros((T, B), dtype=bool)
    open_ = np.ones((T, B), dtype=bool)
    # Step k of every window at once: O(n T B) work, no Python loop over t.
    for k in range(n):
        if k >= T:
            break
        active = open_.copy()
        active[T - k:] = False  # window t would read step t+k >= T
        step = slice(k, T)  # the step t+k for windows t = 0..T-k-1
        returns[: T - k] += np.where(active[: T - k], gamma**k * rewards[step], 0.0)
        m += active
        ends = np.zeros((T, B), dtype=bool)
        ends[: T - k] = active[: T - k] & ended_t[step]
        by_termination[: T - k] |= active[: T - k] & terminated_t[step]
        by_episode_end |= ends
        open_ = active & ~ends

    discounts = np.where(by_termination, 0.0, np.power(float(gamma), m))
    bootstrap_index = np.arange(T, dtype=np.int64)[:, None] + m
    valid = (m == n) | by_episode_end
    return NStep(returns.astype(dtype), discounts.astype(dtype), bootstrap_index, valid)


def _check_shape(name: str, x: torch.Tensor, shape: tuple, like: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {like} = {tuple(shape)}, got {tuple(x.shape)}")


def double_q_targets(
    q_next_online: torch.Tensor,
    q_next_target: torch.Tensor,
    returns: torch.Tensor,
    discounts: torch.Tensor,
) -> torch.Tensor:
    """n-step double-Q targets ``returns + discounts * q_next_target[b, argmax_a q_next_online[b, a]]``.

    The online network selects the bootstrap action and the target network
    evaluates it (van Hasselt et al. 2016); with n-step ``returns`` and
    ``discounts = gamma^n`` (0 at termination) this is Rainbow's target
    (Hessel et al. 2018). Shapes: ``[B, A], [B, A], [B], [B]`` -> ``[B]``,
    computed without gradient.
    """
    if q_next_online.dim() != 2:
        raise ValueError(f"q_next_online must be [B, A], got shape {tuple(q_next_online.shape)}")
    B = q_next_online.shape[0]
    _check_shape("q_next_target", q_next_target, q_next_online.shape, "q_next_online.shape [B, A]")
    _check_shape("returns", returns, (B,), "[B]")
    _check_shape("discounts", discounts, (B,), "[B]")
    with torch.no_grad():
        a_star = q_next_online.argmax(dim=1, keepdim=True)
        q_boot = q_next_target.gather(1, a_star).squeeze(1)
        return (returns + discounts * q_boot).detach()


def dqn_loss(
    q_values: torch.Tensor,
    actions: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None = None,
    huber_delta: float = 1.0,
) -> DQNLoss:
    """Huber TD loss on ``q_values[b, actions[b]]`` against fixed ``targets`` (Mnih et al. 2015).

    ``loss = mean_b(weights[b] * huber(td_errors[b]))`` with
    ``huber(x) = x^2 / 2`` for ``|x| <= delta`` and ``delta (|x| - delta / 2)``
    beyond; ``weights`` (default 1) are the importance weights of prioritised
    replay, used as given (Schaul et al. 2016 normalise them by their max).
    ``td_errors = targets - q_values[b, actions[b]]``, detached, for priority
    updates. Shapes: ``[B, A], [B] (integer), [B], [B] or None``.
    """
    if q_values.dim() != 2:
        raise ValueError(f"q_values must be [B, A], got shape {tuple(q_values.shape)}")
    B, A = q_values.shape
    _check_shape("actions", actions, (B,), "[B]")
    _check_shape("targets", targets, (B,), "[B]")
    if weights is not None:
        _check_shape("weights", weights, (B,), "[B]")
    if actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor, got dtype {actions.dtype}")
    if B and (int(actions.min()) < 0 or int(actions.max()) >= A):
        raise ValueError(f"actions must lie in [0, {A}), got values in [{int(actions.min())}, {int(actions.max())}]")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be > 0, got {huber_delta!r}")

    q_sa = q_values.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    # Targets are fixed points of the regression: no gradient may flow into them.
    targets = targets.detach()
    per_sample = F.huber_loss(q_sa, targets, reduction="none", delta=huber_delta)
    if weights is not None:
        per_sample = weights.detach() * per_sample
    return DQNLoss(per_sample.mean(), (targets - q_sa).detach())

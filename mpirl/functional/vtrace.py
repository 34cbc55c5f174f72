"""V-trace off-policy value targets and policy-gradient advantages as a pure function.

Reference:
  Espeholt et al. 2018, "IMPALA: Scalable Distributed Deep-RL with Importance
  Weighted Actor-Learner Architectures", section 4.1: the n-step target of
  equation (1) and its recursive form; the policy-gradient advantage is the
  one used by the actor-critic update of section 4.2.

Conventions follow TorchBeast (core/vtrace.py) and rlax (vtrace): inputs are
time-major ``[T, B]``, per-step ``discounts`` (0 at a termination) stand in for
the paper's constant gamma, and ``lambda_`` scales the trace coefficients c_i.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch


class VTraceReturns(NamedTuple):
    """``vs``: the V-trace targets v_s; ``pg_advantages``: rho_s (r_s + gamma_s v_{s+1} - V(x_s)). Both ``[T, B]``."""

    vs: torch.Tensor
    pg_advantages: torch.Tensor


def _check_inputs(log_rhos, discounts, rewards, values, bootstrap_value,
                  thresholds: dict, lambda_: float) -> None:
    tensors = (("log_rhos", log_rhos), ("discounts", discounts), ("rewards", rewards),
               ("values", values), ("bootstrap_value", bootstrap_value))
    for name, x in tensors:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"vtrace: {name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.dtype.is_floating_point:
            raise ValueError(f"vtrace: {name} must have a floating-point dtype, got {x.dtype}")
    if log_rhos.dim() != 2:
        raise ValueError(f"vtrace: log_rhos must be 2-D time-major (T, B), got shape {tuple(log_rhos.shape)}")
    T, B = log_rhos.shape
    for name, x in tensors[1:4]:
        if tuple(x.shape) != (T, B):
            raise ValueError(f"vtrace: {name} has shape {tuple(x.shape)}, expected (T, B) = {(T, B)} like log_rhos")
    if tuple(bootstrap_value.shape) != (B,):
        raise ValueError(f"vtrace: bootstrap_value has shape {tuple(bootstrap_value.shape)}, "
                         f"expected (B,) = ({B},) like log_rhos[-1]")
    for name, threshold in thresholds.items():
        # `not >= 0` also rejects NaN, which min() would silently propagate.
        if threshold is not None and not threshold >= 0:
            raise ValueError(f"vtrace: {name} must be None (no clipping) or >= 0, got {threshold!r}")
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"vtrace: lambda_ must be in [0, 1], got {lambda_!r}")


def _clip(rhos: torch.Tensor, threshold: Optional[float]) -> torch.Tensor:
    return rhos if threshold is None else torch.clamp(rhos, max=threshold)


def vtrace(
    log_rhos: torch.Tensor,
    discounts: torch.Tensor,
    rewards: torch.Tensor,
    values: torch.Tensor,
    bootstrap_value: torch.Tensor,
    clip_rho_threshold: Optional[float] = 1.0,
    clip_c_threshold: Optional[float] = 1.0,
    clip_pg_rho_threshold: Optional[float] = 1.0,
    lambda_: float = 1.0,
) -> VTraceReturns:
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, section 4.1).

    Inputs are time-major ``[T, B]``: ``log_rhos = log pi(a_t|x_t) - log mu(a_t|x_t)``
    (target minus behaviour policy), ``discounts`` gamma_t (0 where the episode
    ended at step t), ``rewards`` r_t, ``values`` V(x_t); ``bootstrap_value`` is
    V(x_T), shape ``[B]``. With rho_t = min(rho_bar, pi/mu) and
    c_i = lambda * min(c_bar, pi/mu), equation (1) of the paper is

        v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i c_i) delta_t V,
        delta_t V = rho_t (r_t + gamma_t V(x_{t+1}) - V(x_t)),

    computed by the backward recursion
    ``v_s - V(x_s) = delta_s V + gamma_s c_s (v_{s+1} - V(x_{s+1}))`` with v_T = V(x_T).
    The advantages are ``min(rho_bar_pg, pi/mu)_s (r_s + gamma_s v_{s+1} - V(x_s))``.
    A threshold of ``None`` disables that clipping. The result carries no
    gradient (the targets are fixed, as in the paper); its dtype is the
    promoted dtype of the inputs.
    """
    _check_inputs(log_rhos, discounts, rewards, values, bootstrap_value,
                  {"clip_rho_threshold": clip_rho_threshold, "clip_c_threshold": clip_c_threshold,
                   "clip_pg_rho_threshold": clip_pg_rho_threshold}, lambda_)
    with torch.no_grad():
        dtype = log_rhos.dtype
        for x in (discounts, rewards, values, bootstrap_value):
            dtype = torch.promote_types(dtype, x.dtype)
        log_rhos_t, discounts_t, rewards_t, values_t = (
            x.to(dtype) for x in (log_rhos, discounts, rewards, values))
        bootstrap_value = bootstrap_value.to(dtype)

        rhos_t = torch.exp(log_rhos_t)
        clipped_rhos_t = _clip(rhos_t, clip_rho_threshold)
        cs_t = lambda_ * _clip(rhos_t, clip_c_threshold)
        # Slicing the concatenation (not cat(values[1:], ...)) keeps T rows even when T == 0.
        values_tp1 = torch.cat([values_t, bootstrap_value.unsqueeze(0)])[1:]
        deltas_t = clipped_rhos_t * (rewards_t + discounts_t * values_tp1 - values_t)

        # The sum in equation (1) is O(T^2); accumulating from the end makes it O(T),
        # and v_T - V(x_T) = 0 because the bootstrap value is V(x_T) itself.
        vs_minus_v_t = torch.empty_like(values_t)
        acc = torch.zeros_like(bootstrap_value)
        for t in range(values_t.shape[0] - 1, -1, -1):
            acc = deltas_t[t] + discounts_t[t] * cs_t[t] * acc
            vs_minus_v_t[t] = acc
        vs_t = vs_minus_v_t + values_t

        vs_tp1 = torch.cat([vs_t, bootstrap_value.unsqueeze(0)])[1:]
        pg_rhos_t = _clip(rhos_t, clip_pg_rho_threshold)
        pg_advantages_t = pg_rhos_t * (rewards_t + discounts_t * vs_tp1 - values_t)
        return VTraceReturns(vs=vs_t, pg_advantages=pg_advantages_t)


__all__ = ["VTraceReturns", "vtrace"]

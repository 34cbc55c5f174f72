"""Schedules of the torch algorithms: learning rate, exploration rate, warm-up, importance-sampling exponent."""
from __future__ import annotations


def linear_lr(lr: float, decay: bool, env_steps: int, total_env_steps: int) -> float:
    """``lr``, decayed linearly to 0 over ``total_env_steps`` when ``decay``."""
    if not decay:
        return lr
    return lr * max(0.0, 1.0 - env_steps / total_env_steps)


def lr_at(a, env_steps: int, total_env_steps: int) -> float:
    """The learning rate of a config section with ``lr`` and ``lr_decay`` after ``env_steps``."""
    return linear_lr(a.lr, a.lr_decay, env_steps, total_env_steps)


def linear_anneal(start: float, end, env_steps: int, total_env_steps: int) -> float:
    """``start`` moved linearly to ``end`` over ``total_env_steps`` (then ``end``); ``end`` None: ``start``."""
    return start if end is None else linear_epsilon(start, end, total_env_steps, env_steps)


def linear_epsilon(start: float, end: float, decay_steps: int, env_steps: int) -> float:
    """Exploration rate falling linearly from ``start`` to ``end`` over ``decay_steps``, then ``end``."""
    frac = min(1.0, env_steps / decay_steps)
    return start + frac * (end - start)


def apex_epsilon(base: float, alpha: float, i: int, n: int) -> float:
    """Ape-X's fixed exploration rate of actor ``i`` of ``n``: ``base^(1 + alpha i / (n - 1))``."""
    return base ** (1 + alpha * i / (n - 1)) if n > 1 else base


def warmup_epsilon(eps: float, steps: int, warmup_steps: int) -> float:
    """Epsilon after ``steps`` of an actor's own env steps: linear from 1 to ``eps`` over ``warmup_steps``."""
    if steps >= warmup_steps:
        return eps
    return eps + (1.0 - eps) * (1.0 - steps / warmup_steps)


def linear_beta(start: float, anneal_updates: int, updates: int) -> float:
    """Prioritized replay's importance-sampling exponent, annealed linearly from ``start`` to 1."""
    frac = min(1.0, updates / anneal_updates)
    return start + frac * (1.0 - start)

"""Environments from ``env.id`` / ``env.kwargs``, with errors that name the key."""
from __future__ import annotations

import difflib

from mpirl.errors import ConfigError


def make_env(env_cfg, max_episode_steps: int | None = None):
    """Build one gymnasium environment from an :class:`~mpirl.config.EnvConfig`.

    ``max_episode_steps`` caps episodes of environments that have no limit of
    their own (e.g. CliffWalking), so a poor greedy policy cannot loop forever.
    """
    import gymnasium as gym

    try:
        spec = gym.spec(env_cfg.id)
    except Exception:
        ids = list(gym.registry.keys())
        close = difflib.get_close_matches(env_cfg.id, ids, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown env id {env_cfg.id!r} (key 'env.id'){hint}", key="env.id") from None
    limit = env_cfg.max_episode_steps or spec.max_episode_steps or max_episode_steps
    try:
        # The passive checker only re-validates gymnasium's own envs on every step.
        return gym.make(env_cfg.id, max_episode_steps=limit, disable_env_checker=True, **env_cfg.kwargs)
    except Exception as e:  # environment constructors raise any type (KeyError for a bad map name...)
        raise ConfigError(f"env {env_cfg.id!r} rejected 'env.kwargs' {env_cfg.kwargs}: "
                          f"{type(e).__name__}: {e}", key="env.kwargs") from None


def episode_limit(env) -> int | None:
    """The step limit of an environment made by :func:`make_env` (None if unlimited)."""
    spec = getattr(env, "spec", None)
    return getattr(spec, "max_episode_steps", None)

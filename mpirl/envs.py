"""Environments from ``env.id`` / ``env.kwargs`` / ``env.wrappers``, with errors that name the key.

Environment families that live in their own package register on first use:
``MinAtar/<Game>-v1`` (the ``minatar`` package, ``pip install 'mpirl[minatar]'``)
and ``ALE/<Game>-v5`` (``ale-py``, ``pip install 'mpirl[atari]'``). A job that
asks for one without its package gets a ConfigError naming the package, as
does a MuJoCo task (``HalfCheetah-v5``; ``pip install 'mpirl[mujoco]'``)
without the ``mujoco`` package.
``env.wrappers = "atari"`` applies the standard Atari preprocessing of
:mod:`mpirl.atari`; every process (actors, the greedy checks, ``mpirl eval``)
builds its environments here, so they all see the same observations.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util

from mpirl.errors import ConfigError

# id prefix -> (module that registers it, how it registers, the extra that installs it)
_FAMILIES = {
    "MinAtar/": ("minatar.gym", "minatar", "mpirl[minatar]"),
    "ALE/": ("ale_py", "ale-py", "mpirl[atari]"),
}


def register_family(env_id: str) -> None:
    """Register the gymnasium ids of ``env_id``'s package (MinAtar, ALE) if it has one; idempotent."""
    import gymnasium as gym

    for prefix, (module, package, extra) in _FAMILIES.items():
        if not env_id.startswith(prefix):
            continue
        if env_id in gym.registry:
            return
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise ConfigError(f"env id {env_id!r} (key 'env.id') needs the {package!r} package, which is not "
                              f"installed: pip install '{extra}' (or `pip install {package}`)", key="env.id") from None
        if module == "minatar.gym":
            mod.register_envs()
        else:
            gym.register_envs(mod)


def _spec(env_id: str):
    import gymnasium as gym

    register_family(env_id)
    try:
        spec = gym.spec(env_id)
    except Exception:
        ids = list(gym.registry.keys())
        close = difflib.get_close_matches(env_id, ids, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown env id {env_id!r} (key 'env.id'){hint}", key="env.id") from None
    if "envs.mujoco" in str(spec.entry_point) and importlib.util.find_spec("mujoco") is None:
        raise ConfigError(f"env id {env_id!r} (key 'env.id') needs the 'mujoco' package, which is not installed: "
                          f"pip install 'mpirl[mujoco]'", key="env.id")
    return spec


def _check_wrappers(env_cfg, spec) -> None:
    if env_cfg.wrappers == "atari" and "ale_py" not in str(spec.entry_point):
        raise ConfigError(f"env.wrappers = 'atari' needs an Atari id such as 'ALE/Pong-v5', not {env_cfg.id!r} "
                          f"(key 'env.wrappers')", key="env.wrappers")


def base_kwargs(env_cfg) -> dict:
    """Keyword arguments of ``gymnasium.make`` for one copy before wrapping (the wrappers' own base settings)."""
    kwargs = dict(env_cfg.kwargs)
    if env_cfg.wrappers == "atari":
        from mpirl.atari import base_env_kwargs

        kwargs = {**base_env_kwargs(env_cfg.atari), **kwargs}
    return kwargs


def wrap(env, env_cfg, evaluation: bool = False):
    """``env`` with the wrappers ``env.wrappers`` names (``evaluation``: full games, no life-loss ends)."""
    if env_cfg.wrappers == "atari":
        from mpirl.atari import atari_wrappers

        return atari_wrappers(env, env_cfg.atari, evaluation=evaluation)
    return env


def make_env(env_cfg, max_episode_steps: int | None = None, evaluation: bool = False):
    """Build one gymnasium environment from an :class:`~mpirl.config.EnvConfig`.

    ``max_episode_steps`` caps episodes of environments that have no limit of
    their own (e.g. CliffWalking), so a poor greedy policy cannot loop forever.
    ``evaluation`` builds the copy greedy evaluations play (see :func:`wrap`).
    """
    import gymnasium as gym

    spec = _spec(env_cfg.id)
    _check_wrappers(env_cfg, spec)
    limit = env_cfg.max_episode_steps or spec.max_episode_steps or max_episode_steps
    wrapped = env_cfg.wrappers != "none"
    try:
        # The passive checker only re-validates gymnasium's own envs on every step.
        env = gym.make(env_cfg.id, max_episode_steps=None if wrapped else limit, disable_env_checker=True,
                       **base_kwargs(env_cfg))
    except Exception as e:  # environment constructors raise any type (KeyError for a bad map name...)
        raise ConfigError(f"env {env_cfg.id!r} rejected 'env.kwargs' {env_cfg.kwargs}: "
                          f"{type(e).__name__}: {e}", key="env.kwargs") from None
    return _agent_step_limit(wrap(env, env_cfg, evaluation), env_cfg)


def _agent_step_limit(env, env_cfg):
    """A wrapped copy's ``env.max_episode_steps`` counts the agent's steps, not the emulator's frames.

    (ALE games end themselves after 108K frames, so they need no fallback cap.)
    """
    if env_cfg.wrappers == "none" or not env_cfg.max_episode_steps:
        return env
    from gymnasium.wrappers import TimeLimit

    return TimeLimit(env, env_cfg.max_episode_steps)


def make_vec_env(env_cfg, seed: int):
    """``env.num_envs`` copies as one gymnasium vector env, reset with ``seed``.

    Without wrappers it is the id's fast vector version if it has one
    (CartPole's numpy-vectorised env); with wrappers, copies stepped in turn.
    """
    import gymnasium as gym

    spec = _spec(env_cfg.id)
    _check_wrappers(env_cfg, spec)
    kwargs = base_kwargs(env_cfg)
    if env_cfg.wrappers == "none":
        if env_cfg.max_episode_steps:
            kwargs["max_episode_steps"] = env_cfg.max_episode_steps
        envs = gym.make_vec(env_cfg.id, num_envs=env_cfg.num_envs, **kwargs)
    else:
        envs = gym.make_vec(env_cfg.id, num_envs=env_cfg.num_envs, vectorization_mode="sync",
                            wrappers=[lambda e: _agent_step_limit(wrap(e, env_cfg), env_cfg)], **kwargs)
    envs.reset(seed=seed)
    # The actors' Autoreset clips what the learner sees (mpirl.rollout.reward_clip_of); returns stay raw.
    envs.mpirl_reward_clip = float(getattr(env_cfg, "reward_clip", 0.0))
    return envs


def episode_limit(env) -> int | None:
    """The step limit of an environment made by :func:`make_env` (None if unlimited)."""
    spec = getattr(env, "spec", None)
    return getattr(spec, "max_episode_steps", None)

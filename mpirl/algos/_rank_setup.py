"""Start-up shared by the torch algorithms' wirings: torch threads and seed, counters, this rank's envs."""
from __future__ import annotations


def seed_torch(ctx) -> None:
    """Limit torch to ``agent.torch_threads`` and seed it from this rank's RNG (one draw)."""
    import torch

    torch.set_num_threads(ctx.agent.torch_threads)
    torch.manual_seed(int(ctx.rng.integers(2**31)))


def restored_counters(ctx) -> dict:
    """``env_steps``, ``updates``, ``episodes``: 0 on a fresh run, the checkpoint's values on resume."""
    counters = {"env_steps": 0, "updates": 0, "episodes": 0}
    counters.update({k: int(v) for k, v in ctx.restored_counters.items() if k in counters})
    return counters


def rank_envs(ctx):
    """This rank's vector env and its :class:`~mpirl.specs.EnvSpec`.

    The seed is offset by the env steps already taken, so that a resumed run
    does not replay the first run's environments.
    """
    from mpirl.rollout import make_vec_env
    from mpirl.seeding import env_seeds
    from mpirl.specs import env_spec

    cfg = ctx.cfg
    envs = make_vec_env(cfg.env, env_seeds(cfg.seed, ctx.rank, 1)[0] + restored_counters(ctx)["env_steps"])
    return envs, env_spec(envs)

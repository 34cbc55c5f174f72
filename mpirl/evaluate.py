"""Greedy evaluation on one process (no MPI): the figures `mpirl eval` prints."""
from __future__ import annotations

import numpy as np

from mpirl.envs import make_env


def evaluate(policy, env_cfg, episodes: int, seed: int = 0, max_episode_steps: int = 1000) -> dict:
    """Run ``policy(obs) -> action`` for ``episodes`` episodes; episode i is reset with seed ``seed + i``.

    Seeding every episode makes two policies evaluated with the same seed face
    the same random numbers wherever they act alike (common random numbers),
    which removes most of the noise from comparisons.
    """
    env = make_env(env_cfg, max_episode_steps=max_episode_steps, evaluation=True)
    returns, lengths = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
    env.close()
    r = np.asarray(returns)
    return {
        "env_id": env_cfg.id,
        "episodes": int(episodes),
        "episode_return_mean": float(r.mean()),
        "episode_return_std": float(r.std()),
        "episode_return_min": float(r.min()),
        "episode_return_max": float(r.max()),
        "episode_length_mean": float(np.mean(lengths)),
        "seed": int(seed),
    }

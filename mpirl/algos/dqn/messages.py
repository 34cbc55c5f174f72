"""Message specs shared by the DQN-family wirings (dqn, apex)."""
from __future__ import annotations

import numpy as np

from mpirl.comm.buffers import MessageSpec


def trajectory_spec(n: int, obs_dim: int) -> MessageSpec:
    """One actor's round: n transition slots plus the returns of the episodes it finished."""
    return MessageSpec({
        "obs": ((n, obs_dim), np.float32), "action": ((n,), np.int64), "reward": ((n,), np.float32),
        "discount": ((n,), np.float32), "next_obs": ((n, obs_dim), np.float32), "valid": ((n,), np.uint8),
        "priority": ((n,), np.float32), "steps": ((), np.int64), "episodes": ((), np.int64),
        "episode_returns": ((n,), np.float64)})


def fill_trajectory(msg, out: dict) -> None:
    """Copy an actor's ``collect`` output into a trajectory message."""
    for k in ("obs", "action", "reward", "discount", "next_obs", "valid"):
        msg[k] = out[k]
    rets = out["episode_returns"][: len(msg["episode_returns"])]
    msg["episodes"] = len(rets)
    msg["episode_returns"][: len(rets)] = rets
    msg["steps"] = out["steps"]


def transitions(msg) -> dict:
    """The valid transitions of a trajectory message, as replay rows."""
    keep = msg["valid"].astype(bool)
    return {k: msg[k][keep] for k in ("obs", "action", "reward", "discount", "next_obs")}

"""Message and replay specs shared by the DQN-family wirings (dqn, apex), derived from the env spec."""
from __future__ import annotations

import numpy as np

from mpirl.comm.buffers import MessageSpec

ROW_FIELDS = ("obs", "action", "reward", "discount", "next_obs")


def replay_spec(env_spec) -> dict:
    """The fields of one stored n-step transition (observations in their own dtype)."""
    return {"obs": env_spec.obs_field(), "action": env_spec.action.field(), "reward": ((), np.float32),
            "discount": ((), np.float32), "next_obs": env_spec.obs_field()}


def trajectory_spec(n: int, env_spec) -> MessageSpec:
    """One actor's round: n transition slots plus the returns of the episodes it finished."""
    return MessageSpec({
        "obs": env_spec.obs_field(n), "action": env_spec.action.field(n), "reward": ((n,), np.float32),
        "discount": ((n,), np.float32), "next_obs": env_spec.obs_field(n), "valid": ((n,), np.uint8),
        "priority": ((n,), np.float32), "steps": ((), np.int64), "episodes": ((), np.int64),
        "episode_returns": ((n,), np.float64)})


def fill_trajectory(msg, out: dict) -> None:
    """Copy an actor's ``collect`` output into a trajectory message."""
    for k in (*ROW_FIELDS, "valid"):
        msg[k] = out[k]
    rets = out["episode_returns"][: len(msg["episode_returns"])]
    msg["episodes"] = len(rets)
    msg["episode_returns"][: len(rets)] = rets
    msg["steps"] = out["steps"]


def transitions(msg) -> dict:
    """The valid transitions of a trajectory message, as replay rows."""
    keep = msg["valid"].astype(bool)
    return {k: msg[k][keep] for k in ROW_FIELDS}

"""Message and replay specs shared by the DQN-family wirings (dqn, apex), derived from the env spec.

Vector observations travel as transition rows (``obs`` and ``next_obs`` of
every slot) into a row replay. Pixel observations (``EnvSpec.obs_kind ==
"image"``) travel once each: every env copy's observation history of the
round (``T + n_step`` rows, the first ``n_step`` repeating the end of the
previous round) plus each slot's bootstrap row, into the frame replay
(:mod:`mpirl.replay.frames`), which stores each frame once.
"""
from __future__ import annotations

import numpy as np

from mpirl.comm.buffers import MessageSpec

ROW_FIELDS = ("obs", "action", "reward", "discount", "next_obs")
HISTORY_FIELDS = ("history", "boot", "action", "reward", "discount")


def uses_frames(env_spec) -> bool:
    """Whether observations of ``env_spec`` go to the frame replay (images) rather than the row replay."""
    return env_spec.obs_kind == "image"


def replay_spec(env_spec) -> dict:
    """The fields of one stored n-step transition (observations in their own dtype)."""
    return {"obs": env_spec.obs_field(), "action": env_spec.action.field(), "reward": ((), np.float32),
            "discount": ((), np.float32), "next_obs": env_spec.obs_field()}


def make_replay(capacity: int, env_spec, prioritized: bool = False, alpha: float = 0.6):
    """The replay memory for ``env_spec``: frame replay for images, else the row replay (uniform or prioritized)."""
    from mpirl.replay import FrameReplay, PrioritizedFrameReplay, PrioritizedReplay, ReplayBuffer

    spec = replay_spec(env_spec)
    if uses_frames(env_spec):
        return PrioritizedFrameReplay(capacity, spec, alpha=alpha) if prioritized else FrameReplay(capacity, spec)
    return PrioritizedReplay(capacity, spec, alpha=alpha) if prioritized else ReplayBuffer(capacity, spec)


def trajectory_spec(n: int, env_spec, history: tuple | None = None) -> MessageSpec:
    """One actor's round: n transition slots plus the returns of the episodes it finished.

    For images, ``history = (rows, num_envs)`` (``rows = T + n_step``) sizes
    the observation history that replaces ``obs``/``next_obs``.
    """
    common = {"valid": ((n,), np.uint8), "priority": ((n,), np.float32), "steps": ((), np.int64),
              "episodes": ((), np.int64), "episode_returns": ((n,), np.float64)}
    rows = {"action": env_spec.action.field(n), "reward": ((n,), np.float32), "discount": ((n,), np.float32)}
    if not uses_frames(env_spec):
        return MessageSpec({"obs": env_spec.obs_field(n), **rows, "next_obs": env_spec.obs_field(n), **common})
    if history is None:
        raise ValueError("image observations travel as histories: pass history=(rows, num_envs)")
    r, envs = (int(x) for x in history)
    if n % envs or r < n // envs:
        raise ValueError(f"a history of {r} rows x {envs} env copies does not fit {n} slots")
    return MessageSpec({"history": env_spec.obs_field(r, envs), "boot": ((n,), np.int32), **rows, **common})


def fill_trajectory(msg, out: dict) -> None:
    """Copy an actor's ``collect`` output into a trajectory message."""
    for k in (*(HISTORY_FIELDS if "history" in msg.spec.fields else ROW_FIELDS), "valid"):
        msg[k] = out[k]
    rets = out["episode_returns"][: len(msg["episode_returns"])]
    msg["episodes"] = len(rets)
    msg["episode_returns"][: len(rets)] = rets
    msg["steps"] = out["steps"]


def transitions(msg, source: int = 0) -> dict:
    """The valid transitions of a trajectory message, as a replay batch.

    Rows for vector observations; for images a history batch of
    :meth:`mpirl.replay.FrameReplay.add` whose streams are ``(source,
    env copy)``: pass the sending rank as ``source``.
    """
    keep = msg["valid"].astype(bool)
    if "history" not in msg.spec.fields:
        return {k: msg[k][keep] for k in ROW_FIELDS}
    hist = msg["history"]
    envs = hist.shape[1]
    slots = np.flatnonzero(keep)
    return {"history": hist, "row": slots // envs, "column": slots % envs, "boot": msg["boot"][keep].astype(np.int64),
            "action": msg["action"][keep], "reward": msg["reward"][keep], "discount": msg["discount"][keep],
            "source": int(source), "overlap": hist.shape[0] - len(keep) // envs}

"""Message specs of IMPALA: an actor's unroll, the learner's weights."""
from __future__ import annotations

import numpy as np

from mpirl.comm.buffers import MessageSpec

# Truncation needs no field: the step after a truncated one is a reset step, whose value bootstraps it.
UNROLL_FIELDS = ("obs", "action", "reward", "terminated", "reset", "policy_params")


def unroll_spec(T: int, B: int, env_spec, num_params: int) -> MessageSpec:
    """One unroll of B env copies: T+1 observations, T steps, the policy version that acted, finished returns.

    Observations keep the environment's shape and dtype; ``policy_params`` are
    the behaviour distribution's ``num_params`` parameters at each step. An env
    copy ends at most one episode per step, so T x B slots always hold the
    returns of the episodes that ended during the unroll.
    """
    return MessageSpec({
        "obs": env_spec.obs_field(T + 1, B), "action": env_spec.action.field(T, B), "reward": ((T, B), np.float32),
        "terminated": ((T, B), np.uint8), "reset": ((T, B), np.uint8),
        "policy_params": ((T, B, num_params), np.float32), "version": ((), np.int64), "steps": ((), np.int64),
        "episodes": ((), np.int64), "episode_returns": ((T * B,), np.float64)})


def weights_spec(num_params: int) -> MessageSpec:
    """The learner's flat parameters and their version (its update count)."""
    return MessageSpec({"params": ((num_params,), np.float32), "version": ((), np.int64)})


def fill_unroll(msg, out: dict, version: int) -> None:
    """Copy an actor's :meth:`~mpirl.rollout.UnrollActor.unroll` output into an unroll message."""
    for k in UNROLL_FIELDS:
        msg[k] = out[k]
    rets = out["episode_returns"]
    msg["episodes"] = len(rets)
    msg["episode_returns"][: len(rets)] = rets
    msg["steps"] = out["steps"]
    msg["version"] = version


class UnrollBatch:
    """``batch_size`` unrolls side by side, ``[T(+1), batch_size * B, ...]``, preallocated once.

    Received messages are copied in at once (a receiver's buffer is reused),
    each into its own column block.
    """

    def __init__(self, spec: MessageSpec, batch_size: int):
        self.n, self.size = 0, batch_size
        self.arrays = {}
        for k in UNROLL_FIELDS:
            shape, dtype = spec.fields[k]
            self.arrays[k] = np.zeros((shape[0], shape[1] * batch_size, *shape[2:]), dtype)
        self.B = spec.fields["action"][0][1]
        self.versions = np.zeros(batch_size, np.int64)

    def add(self, msg) -> bool:
        """Copy one unroll message in; True when the batch is full."""
        cols = slice(self.n * self.B, (self.n + 1) * self.B)
        for k, arr in self.arrays.items():
            arr[:, cols] = msg[k]
        self.versions[self.n] = int(msg["version"])
        self.n += 1
        return self.n == self.size

    def clear(self) -> None:
        """Start the next batch (the arrays are overwritten, not reallocated)."""
        self.n = 0

"""The advantage actor-critic learner shared by `a2c`, `a3c` and `gossip_a2c`.

It does not know about ranks or MPI: it turns an unroll into a gradient in one
flat float32 vector (:attr:`ActorCriticLearner.grad`) and applies whatever
that vector holds with its optimizer, so the wiring decides what the vector
holds in between (an average over ranks, a worker's gradient on the server).
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from mpirl.algos._nonfinite import NonFiniteGuard
from mpirl.algos._optim import make_optimizer
from mpirl.algos.impala.learner import lr_at
from mpirl.comm.buffers import flat_gradients, flat_parameters
from mpirl.functional.a2c import a2c_loss
from mpirl.nets import ActorCritic
from mpirl.torch_state import load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays

__all__ = ["ActorCriticLearner", "lr_at", "make_network", "param_fingerprint", "replicas_agree"]


def make_network(a, obs_dim: int, num_actions: int) -> ActorCritic:
    """The actor-critic network the config describes (separate policy and value MLPs)."""
    return ActorCritic(obs_dim, num_actions, hidden=tuple(a.hidden))


class ActorCriticLearner:
    """A network, its flat parameter and gradient vectors, and an RMSprop or Adam optimizer.

    ``grad_out``: a float32 array whose leading part becomes the gradient
    vector, so values appended after it travel in the same collective.
    ``max_nonfinite``: see :class:`~mpirl.algos._nonfinite.NonFiniteGuard`;
    the gradient of a non-finite loss is all NaN, so whichever rank applies it
    (every replica after the Allreduce, the A3C server) skips it.
    """

    def __init__(self, a, obs_dim: int, num_actions: int, total_env_steps: int, grad_out=None,
                 max_nonfinite: int = 0):
        self.a, self.total_env_steps = a, total_env_steps
        self.guard = NonFiniteGuard(max_nonfinite)
        self.net = make_network(a, obs_dim, num_actions)
        self.flat = flat_parameters(self.net)
        self.grad = flat_gradients(self.net, grad_out)
        self.opt = make_optimizer(a.optimizer, self.net.parameters(), a.lr, fused=False,
                                  rmsprop_alpha=a.rmsprop_alpha, rmsprop_eps=a.rmsprop_eps)
        self.updates = 0

    def compute_gradient(self, unroll: dict) -> dict:
        """Fill :attr:`grad` with the A2C loss gradient of one unroll (``[T+1, B]`` obs); returns the loss parts."""
        a = self.a
        obs = torch.from_numpy(unroll["obs"])
        T1, B = obs.shape[:2]
        logits, values = self.net(obs.reshape(T1 * B, -1))
        out = a2c_loss(logits.reshape(T1, B, -1), values.reshape(T1, B), torch.from_numpy(unroll["action"]),
                       torch.from_numpy(unroll["reward"]), torch.from_numpy(unroll["terminated"]),
                       torch.from_numpy(unroll["reset"]), a.gamma, a.value_cost, a.entropy_cost)
        loss = self.guard.loss(out.loss)
        self.grad[...] = 0.0  # backward accumulates into the flat views
        loss.backward()
        if not math.isfinite(float(loss.detach())):
            self.grad[...] = np.nan  # carries the verdict to the rank that applies it
        return {"pg_loss": float(out.pg_loss), "value_loss": float(out.value_loss), "entropy": float(out.entropy)}

    def apply_gradient(self, env_steps: int) -> dict:
        """One optimizer step with :attr:`grad`; ``env_steps`` (all ranks) sets the decayed learning rate."""
        lr = lr_at(self.a, env_steps, self.total_env_steps)
        for group in self.opt.param_groups:
            group["lr"] = lr
        grad_norm = float("nan")
        if not self.guard.allow(self.grad):
            return {"grad_norm": grad_norm, "lr": lr, **self.guard.metrics()}
        if self.a.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.a.max_grad_norm))
        self.opt.step()
        self.updates += 1
        return {"grad_norm": grad_norm, "lr": lr, **self.guard.metrics()}

    def state_dict(self) -> dict:
        """Network and optimizer (with its current learning rate) as named arrays."""
        return {**module_arrays("net", self.net), **optimizer_arrays("optim", self.opt)}

    def load_state_dict(self, arrays: dict) -> None:
        """Restore what :meth:`state_dict` saved (the flat views stay intact)."""
        load_module_arrays("net", self.net, arrays)
        load_optimizer_arrays("optim", self.opt, arrays)


def param_fingerprint(flat: np.ndarray) -> np.ndarray:
    """The CRC-32 of a parameter vector's bytes as two 16-bit halves (float32-exact in a sum over ranks)."""
    crc = zlib.crc32(np.ascontiguousarray(flat).view(np.uint8))
    return np.array([crc >> 16, crc & 0xFFFF], np.float32)


def replicas_agree(summed: np.ndarray, mine: np.ndarray, size: int) -> bool:
    """True if every rank holds ``mine``, given the sum of every rank's fingerprint.

    If each rank finds ``sum == size * mine``, all fingerprints equal their
    mean, so they are all equal: one Allreduce checks every pair of ranks.
    """
    return bool(np.array_equal(np.asarray(summed, np.float64), size * np.asarray(mine, np.float64)))

"""The IMPALA learner: an actor-critic network updated with V-trace targets from batched unrolls.

It does not know about ranks or MPI. Its parameters are published as one flat
float32 vector (:meth:`ImpalaLearner.weights`), which on CPU shares memory
with the network.
"""
from __future__ import annotations

import numpy as np
import torch

from mpirl.algos._nonfinite import NonFiniteGuard, total_grad_norm
from mpirl.algos._optim import make_optimizer
from mpirl.comm.buffers import flat_parameters
from mpirl.functional import impala_loss
from mpirl.nets import ActorCritic
from mpirl.torch_state import load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays


def make_network(a, obs_dim: int, num_actions: int) -> ActorCritic:
    """The actor-critic network the config describes (separate policy and value MLPs)."""
    return ActorCritic(obs_dim, num_actions, hidden=tuple(a.hidden))


def lr_at(a, env_steps: int, total_env_steps: int) -> float:
    """The learning rate after the learner received ``env_steps``: linear decay to 0 (if ``lr_decay``)."""
    if not a.lr_decay:
        return a.lr
    return a.lr * max(0.0, 1.0 - env_steps / total_env_steps)


class ImpalaLearner:
    """V-trace actor-critic updates on ``[T+1, N]`` unroll batches.

    ``max_nonfinite``: see :class:`~mpirl.algos._nonfinite.NonFiniteGuard`.
    """

    def __init__(self, a, obs_dim: int, num_actions: int, total_env_steps: int, max_nonfinite: int = 0):
        self.a, self.total_env_steps = a, total_env_steps
        self.guard = NonFiniteGuard(max_nonfinite)
        self.device = torch.device(a.learner.device)
        self.net = make_network(a, obs_dim, num_actions)
        if self.device.type == "cpu":
            self.flat = flat_parameters(self.net)  # publishing reads the parameters without a copy
        else:
            self.net.to(self.device)
            self.flat = np.zeros(sum(p.numel() for p in self.net.parameters()), np.float32)
        self.opt = make_optimizer(a.optimizer, self.net.parameters(), a.lr, fused=False,
                                  rmsprop_alpha=a.rmsprop_alpha, rmsprop_eps=a.rmsprop_eps)
        self.updates = 0

    def weights(self) -> np.ndarray:
        """The network's parameters as one flat float32 vector (a live view on CPU)."""
        if self.device.type != "cpu":
            with torch.no_grad():
                self.flat[...] = torch.cat([p.reshape(-1) for p in self.net.parameters()]).cpu().numpy()
        return self.flat

    def update(self, batch: dict, env_steps: int) -> dict:
        """One gradient step on a batch of unrolls; ``env_steps`` received so far sets the learning rate."""
        a = self.a
        t = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
        obs = t["obs"]
        T1, N = obs.shape[:2]
        logits, values = self.net(obs.reshape(T1 * N, -1))
        logits, values = logits.reshape(T1, N, -1), values.reshape(T1, N)
        rewards = t["reward"] * a.reward_scale
        out = impala_loss(logits, values, t["logits"], t["action"], rewards, t["terminated"], t["reset"],
                          a.gamma, a.baseline_cost, a.entropy_cost, a.clip_rho_threshold, a.clip_pg_rho_threshold)
        lr = lr_at(a, env_steps, self.total_env_steps)
        for group in self.opt.param_groups:
            group["lr"] = lr
        loss = self.guard.loss(out.loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), a.max_grad_norm))
        else:
            grad_norm = float(total_grad_norm(self.net.parameters()))
        loss_value = float(loss.detach())
        if self.guard.allow(loss_value, grad_norm):
            self.opt.step()
            self.updates += 1
        return {"loss": loss_value, "pg_loss": float(out.pg_loss),
                "baseline_loss": float(out.baseline_loss), "entropy": float(out.entropy),
                "grad_norm": grad_norm, "lr": lr, **self.guard.metrics()}

    def state_dict(self) -> dict:
        """Network and optimizer (with its current learning rate) as named arrays."""
        return {**module_arrays("net", self.net), **optimizer_arrays("optim", self.opt)}

    def load_state_dict(self, arrays: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        load_module_arrays("net", self.net, arrays)
        load_optimizer_arrays("optim", self.opt, arrays)

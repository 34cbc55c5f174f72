"""The IMPALA learner: a policy-value network updated with V-trace targets from batched unrolls.

It does not know about ranks or MPI. Its parameters are published as one flat
float32 vector (:meth:`ImpalaLearner.weights`), which on CPU shares memory
with the network.
"""
from __future__ import annotations

import numpy as np
import torch

from mpirl.algos._schedules import linear_anneal, linear_lr
from mpirl.functional import impala_loss
from mpirl.learner import Learner, UsesLearner


class ImpalaLearner(UsesLearner):
    """V-trace actor-critic updates of ``net`` (a policy-value network) on ``[T+1, N]`` unroll batches.

    ``max_nonfinite``: see :class:`~mpirl.nonfinite.NonFiniteGuard`.
    """

    def __init__(self, a, net: torch.nn.Module, total_env_steps: int, max_nonfinite: int = 0,
                 device: str = "cpu"):
        self.a, self.total_env_steps = a, total_env_steps
        self.learner = Learner(net, optimizer=a.optimizer, lr=a.lr, device=device,
                               max_grad_norm=a.max_grad_norm, max_nonfinite=max_nonfinite, fused=False,
                               rmsprop_alpha=a.rmsprop_alpha, rmsprop_eps=a.rmsprop_eps)
        self.net, self.device, self.dist = self.learner.net, self.learner.device, self.learner.net.dist

    def weights(self) -> np.ndarray:
        """The network's parameters as one flat float32 host vector (a live view on CPU, a fresh copy otherwise)."""
        return self.learner.weights()

    def update(self, batch: dict, env_steps: int) -> dict:
        """One gradient step on a batch of unrolls; ``env_steps`` received so far sets the learning rate."""
        a, dist = self.a, self.dist
        t = self.learner.tensors(batch)
        params, values = self.net(t["obs"])  # [T+1, N, P], [T+1, N]
        T = t["action"].shape[0]
        log_pi, entropy = dist.log_prob_and_entropy(params[:T], t["action"])
        log_mu = dist.log_prob(t["policy_params"], t["action"])
        entropy_cost = linear_anneal(a.entropy_cost, a.entropy_cost_final, env_steps, self.total_env_steps)
        out = impala_loss(log_pi, log_mu, entropy, values, t["reward"] * a.reward_scale, t["terminated"], t["reset"],
                          a.gamma, a.baseline_cost, entropy_cost, a.clip_rho_threshold, a.clip_pg_rho_threshold)
        self.learner.set_lr(linear_lr(a.lr, a.lr_decay, env_steps, self.total_env_steps))
        stats = self.learner.step(out.loss)
        return {"loss": stats["loss"], "pg_loss": float(out.pg_loss), "baseline_loss": float(out.baseline_loss),
                "entropy": float(out.entropy), "entropy_cost": entropy_cost, "grad_norm": stats["grad_norm"],
                "lr": stats["lr"],
                "nonfinite_skipped": stats["nonfinite_skipped"]}

    def state_dict(self) -> dict:
        """Network and optimizer (with its current learning rate) as named arrays."""
        return self.learner.state_dict("net")

    def load_state_dict(self, arrays: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.learner.load_state_dict(arrays, "net")

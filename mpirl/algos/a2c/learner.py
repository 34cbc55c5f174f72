"""The advantage actor-critic learner shared by `a2c`, `a3c` and `gossip_a2c`.

It does not know about ranks or MPI: it turns an unroll into a gradient in one
flat float32 vector (:attr:`ActorCriticLearner.grad`) and applies whatever
that vector holds, so the wiring decides what the vector holds in between
(an average over ranks through the learner's reduction hook, a worker's
gradient on the server).
"""
from __future__ import annotations

import torch

from mpirl.algos._replicas import param_fingerprint, replicas_agree
from mpirl.algos._schedules import lr_at
from mpirl.functional.a2c import a2c_loss
from mpirl.learner import Learner, UsesLearner

__all__ = ["ActorCriticLearner", "lr_at", "param_fingerprint", "replicas_agree"]


class ActorCriticLearner(UsesLearner):
    """A policy-value network ``net``, its flat parameter and gradient vectors, and an RMSprop or Adam optimizer.

    ``grad_reduce``: the reduction hook applied between backward and the step
    (:class:`~mpirl.learner.AllreduceMean`, whose buffer holds the gradient
    and the values that travel with it). ``max_nonfinite``: see
    :class:`~mpirl.nonfinite.NonFiniteGuard`; the gradient of a
    non-finite loss is all NaN, so whichever rank applies it skips it.
    """

    def __init__(self, a, net: torch.nn.Module, total_env_steps: int, grad_reduce=None, max_nonfinite: int = 0,
                 device: str = "cpu"):
        self.a, self.total_env_steps = a, total_env_steps
        self.learner = Learner(net, optimizer=a.optimizer, lr=a.lr, max_grad_norm=a.max_grad_norm,
                               max_nonfinite=max_nonfinite, fused=False, rmsprop_alpha=a.rmsprop_alpha,
                               rmsprop_eps=a.rmsprop_eps, grad_reduce=grad_reduce, flat_grads=True,
                               device=device)
        self.net, self.dist = self.learner.net, self.learner.net.dist
        self.flat, self.grad = self.learner.flat, self.learner.grad
        self.guard = self.learner.guard

    def loss(self, unroll: dict) -> tuple[torch.Tensor, dict]:
        """The A2C loss of one unroll (``[T+1, B]`` observations) and its parts as floats."""
        a = self.a
        t = self.learner.tensors({k: unroll[k] for k in ("obs", "action", "reward", "terminated", "reset")})
        params, values = self.net(t["obs"])
        actions = t["action"]
        log_pi, entropy = self.dist.log_prob_and_entropy(params[: actions.shape[0]], actions)
        reward = t["reward"]
        if a.reward_scale != 1.0:
            reward = reward * a.reward_scale
        out = a2c_loss(log_pi, entropy, values, reward,
                       t["terminated"], t["reset"], a.gamma,
                       a.value_cost, a.entropy_cost)
        return out.loss, {"pg_loss": float(out.pg_loss), "value_loss": float(out.value_loss),
                          "entropy": float(out.entropy)}

    def compute_gradient(self, unroll: dict) -> dict:
        """Fill :attr:`grad` with the A2C loss gradient of one unroll; returns the loss parts."""
        loss, parts = self.loss(unroll)
        self.learner.backward(loss)
        return parts

    def apply_gradient(self, env_steps: int) -> dict:
        """One optimizer step with :attr:`grad`; ``env_steps`` (all ranks) sets the decayed learning rate."""
        self.set_lr_for(env_steps)
        stats = self.learner.apply()
        self.learner.weights()  # the acting network (a copy on CPU when the learner has a device) follows
        return stats

    def set_lr_for(self, env_steps: int) -> None:
        """Use the decayed learning rate of ``env_steps`` (all ranks) from the next step on."""
        self.learner.set_lr(lr_at(self.a, env_steps, self.total_env_steps))

    def step(self, loss: torch.Tensor) -> dict:
        """Backward, the reduction hook, and one optimizer step (learning rate: :meth:`set_lr_for`)."""
        stats = self.learner.step(loss)
        self.learner.weights()  # the acting network follows (see apply_gradient)
        return {k: stats[k] for k in ("grad_norm", "lr", "nonfinite_skipped")}

    def state_dict(self) -> dict:
        """Network and optimizer (with its current learning rate) as named arrays."""
        return self.learner.state_dict("net")

    def load_state_dict(self, arrays: dict) -> None:
        """Restore what :meth:`state_dict` saved (the flat views stay intact)."""
        self.learner.load_state_dict(arrays, "net")


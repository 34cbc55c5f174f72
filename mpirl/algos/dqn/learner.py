"""The DQN learner: online and target networks, optimizer, replay; one update at a time.

It does not know about ranks or MPI; its online network's parameters live in
one flat float32 vector (``self.flat``) that the wiring broadcasts or sends.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from mpirl.algos._nonfinite import NonFiniteGuard, total_grad_norm
from mpirl.algos._optim import make_optimizer
from mpirl.comm.buffers import flat_parameters
from mpirl.functional import double_q_targets, dqn_loss
from mpirl.nets import QNetwork
from mpirl.torch_state import load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays


def replay_spec(obs_dim: int) -> dict:
    """The fields of one stored n-step transition."""
    return {"obs": ((obs_dim,), np.float32), "action": ((), np.int64), "reward": ((), np.float32),
            "discount": ((), np.float32), "next_obs": ((obs_dim,), np.float32)}


def make_network(a, obs_dim: int, num_actions: int) -> QNetwork:
    """The Q-network the config describes."""
    return QNetwork(obs_dim, num_actions, hidden=tuple(a.hidden), dueling=a.dueling)


class DQNLearner:
    """n-step double DQN updates from a (uniform or prioritized) replay memory.

    ``max_nonfinite``: see :class:`~mpirl.algos._nonfinite.NonFiniteGuard`.
    """

    def __init__(self, a, obs_dim: int, num_actions: int, replay, rng, max_nonfinite: int = 0):
        self.a, self.replay, self.rng = a, replay, rng
        self.guard = NonFiniteGuard(max_nonfinite)
        self.prioritized = hasattr(replay, "update_priorities")
        self.online = make_network(a, obs_dim, num_actions)
        self.flat = flat_parameters(self.online)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)
        self.opt = make_optimizer(a.optimizer, self.online.parameters(), a.lr)
        self.updates = 0

    def update(self, beta: float = 0.4) -> dict:
        """One gradient step on a sampled batch; returns scalar metrics."""
        if self.prioritized:
            idx, batch, weights = self.replay.sample(self.a.batch_size, beta, self.rng)
            weights = torch.from_numpy(weights)
        else:
            idx, batch = self.replay.sample(self.a.batch_size, self.rng)
            weights = None
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
        # One online pass over obs and next_obs together: small MLPs are bound by per-call overhead.
        q_both = self.online(torch.cat([t["obs"], t["next_obs"]]))
        q, q_next_online = q_both[: len(t["obs"])], q_both[len(t["obs"]):].detach()
        with torch.no_grad():
            targets = double_q_targets(q_next_online, self.target(t["next_obs"]), t["reward"], t["discount"])
        out = dqn_loss(q, t["action"], targets, weights, self.a.huber_delta)
        loss = self.guard.loss(out.loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.a.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.online.parameters(), self.a.max_grad_norm)
        else:
            norm = total_grad_norm(self.online.parameters())
        loss_value = float(loss.detach())
        allowed = self.guard.allow(loss_value, float(norm))
        metrics = {"loss": loss_value, "q_mean": float(q.detach().mean()), **self.guard.metrics()}
        if not allowed:
            return metrics  # no step, and NaN TD errors never become priorities
        self.opt.step()
        if self.prioritized:
            self.replay.update_priorities(idx, out.td_errors.abs().numpy())
        self.updates += 1
        if self.updates % self.a.target_update_period == 0:
            self.target.load_state_dict(self.online.state_dict())
        return metrics

    def state_dict(self, with_replay: bool) -> dict:
        """Networks, optimizer and (optionally) the replay memory as named arrays."""
        out = {**module_arrays("online", self.online), **module_arrays("target", self.target),
               **optimizer_arrays("optim", self.opt)}
        if with_replay:
            out.update({f"replay/{k}": v for k, v in self.replay.state_dict().items()})
        return out

    def load_state_dict(self, arrays: dict) -> None:
        """Restore what :meth:`state_dict` saved (replay too if it was saved)."""
        load_module_arrays("online", self.online, arrays)
        load_module_arrays("target", self.target, arrays)
        load_optimizer_arrays("optim", self.opt, arrays)
        replay = {k[len("replay/"):]: v for k, v in arrays.items() if k.startswith("replay/")}
        if replay:
            self.replay.load_state_dict(replay)

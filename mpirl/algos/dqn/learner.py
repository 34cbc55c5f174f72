"""The DQN learner: online and target networks, optimizer, replay; one update at a time.

It does not know about ranks or MPI; its online network's parameters live in
one flat float32 vector (``self.flat``) that the wiring broadcasts or sends.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from mpirl.functional import double_q_targets, dqn_loss
from mpirl.learner import Learner, UsesLearner
from mpirl.torch_state import load_module_arrays, module_arrays


class DQNLearner(UsesLearner):
    """n-step double DQN updates of the Q-network ``net`` from a (uniform or prioritized) replay memory.

    With a frame replay (pixel observations) obs and next_obs go through the
    online network in two passes, as the strided views the replay returns.

    ``max_nonfinite``: see :class:`~mpirl.nonfinite.NonFiniteGuard`.
    """

    def __init__(self, a, net: torch.nn.Module, replay, rng, max_nonfinite: int = 0, device: str = "cpu"):
        self.a, self.replay, self.rng = a, replay, rng
        self.prioritized = hasattr(replay, "update_priorities")
        self.frames = hasattr(replay, "frames_per_transition")  # a frame replay (mpirl.replay.frames)
        self.learner = Learner(net, optimizer=a.optimizer, lr=a.lr, max_grad_norm=a.max_grad_norm,
                               max_nonfinite=max_nonfinite, device=device)
        self.online = self.learner.net
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)

    @property
    def flat(self) -> np.ndarray:
        """The online network's parameters as one float32 host vector (a live view on CPU)."""
        return self.learner.flat

    def update(self, beta: float = 0.4) -> dict:
        """One gradient step on a sampled batch; returns scalar metrics."""
        if self.prioritized:
            idx, batch, weights = self.replay.sample(self.a.batch_size, beta, self.rng)
            weights = self.learner.tensors({"w": weights})["w"]
        else:
            idx, batch = self.replay.sample(self.a.batch_size, self.rng)
            weights = None
        if self.frames:
            # Channel-last views of frame-major gathers: wrapped as they are, the encoders' channel-first
            # permute makes them contiguous, where a copy here (or a cat) would transpose 30 MB per batch.
            t = self.learner.tensors(batch)
            q = self.online(t["obs"])
            with torch.no_grad():
                q_next_online = self.online(t["next_obs"])
        else:
            t = self.learner.tensors({k: np.ascontiguousarray(v) for k, v in batch.items()})
            # One online pass over obs and next_obs together: small MLPs are bound by per-call overhead.
            q_both = self.online(torch.cat([t["obs"], t["next_obs"]]))
            q, q_next_online = q_both[: len(t["obs"])], q_both[len(t["obs"]):].detach()
        with torch.no_grad():
            targets = double_q_targets(q_next_online, self.target(t["next_obs"]), t["reward"], t["discount"])
        out = dqn_loss(q, t["action"], targets, weights, self.a.huber_delta)
        before = self.learner.updates
        stats = self.learner.step(out.loss)
        metrics = {"loss": stats["loss"], "q_mean": float(q.detach().mean()), "grad_norm": stats["grad_norm"],
                   "nonfinite_skipped": stats["nonfinite_skipped"]}
        if self.learner.updates == before:
            return metrics  # skipped: no step, and NaN TD errors never become priorities
        if self.prioritized:
            self.replay.update_priorities(idx, out.td_errors.abs().cpu().numpy())
        if self.updates % self.a.target_update_period == 0:
            self.target.load_state_dict(self.online.state_dict())
        return metrics

    def state_dict(self, with_replay: bool) -> dict:
        """Networks, optimizer and (optionally) the replay memory as named arrays."""
        out = {**self.learner.state_dict("online"), **module_arrays("target", self.target)}
        if with_replay:
            out.update({f"replay/{k}": v for k, v in self.replay.state_dict().items()})
        return out

    def load_state_dict(self, arrays: dict) -> None:
        """Restore what :meth:`state_dict` saved (replay too if it was saved)."""
        self.learner.load_state_dict(arrays, "online")
        load_module_arrays("target", self.target, arrays)
        replay = {k[len("replay/"):]: v for k, v in arrays.items() if k.startswith("replay/")}
        if replay:
            self.replay.load_state_dict(replay)

"""An IMPALA actor: vectorised environments, a local policy copy, fixed-length unrolls out.

The actor does not know about ranks or MPI: :meth:`UnrollActor.unroll` fills
numpy arrays that the wiring (``run.py``) copies into a message.
"""
from __future__ import annotations

import numpy as np
import torch

from mpirl.seeding import capture_env_rng, rank_rng_doc, restore_env_rng


def resumed_sampling(ctx, envs, resumed_steps: int) -> np.random.Generator:
    """An actor's action-sampling Generator, with ``envs`` put back where the checkpoint left them.

    A fresh run (or a rank the checkpoint has no state for) derives the
    Generator from one draw of this rank's stream and the env steps; on
    resume it is the state this actor reported for the checkpoint
    (``extra["actor_rng"]``, see :func:`rng_doc`), and
    its environments' RNGs (``extra["env_rng"]``) are restored before their
    first reset. Call before building the :class:`UnrollActor`.
    """
    saved = ctx.restored_extra.get("actor_rng")
    if saved is None:
        rng = np.random.default_rng([int(ctx.rng.integers(2**31)), resumed_steps])
    else:  # restored, not derived again (and this rank's generator is not drawn from)
        rng = np.random.default_rng()
        rng.bit_generator.state = saved
    restore_env_rng(envs, ctx.restored_extra.get("env_rng"))
    return rng


def rng_doc(ctx, actor: "UnrollActor") -> dict:
    """What an actor reports for a checkpoint: its RNG states now, with the sampling and environment RNGs."""
    return rank_rng_doc(ctx.rng, {"actor_rng": actor.rng.bit_generator.state, "env_rng": capture_env_rng(actor.envs)})


class UnrollActor:
    """Samples actions from the policy in B environment copies; returns T x B unrolls.

    Observations are stored ``[T+1, B, ...]``: the last observation of one
    unroll is the first of the next, so no transition is lost between
    unrolls. With gymnasium's next-step autoreset, the step after an
    episode's end only resets that copy; it is flagged in ``reset`` (its reward
    is 0 and it belongs to no episode) and not counted as an env step.
    """

    def __init__(self, envs, policy: torch.nn.Module, unroll_length: int, rng: np.random.Generator):
        self.envs, self.policy, self.rng = envs, policy, rng
        self.T, self.B = unroll_length, envs.num_envs
        self.obs_dim = int(np.prod(envs.single_observation_space.shape))
        self.num_actions = int(envs.single_action_space.n)
        T, B = self.T, self.B
        self.out = {
            "obs": np.zeros((T + 1, B, self.obs_dim), np.float32),
            "action": np.zeros((T, B), np.int64),
            "reward": np.zeros((T, B), np.float32),
            "terminated": np.zeros((T, B), np.uint8),
            "truncated": np.zeros((T, B), np.uint8),
            "reset": np.zeros((T, B), np.uint8),
            "logits": np.zeros((T, B, self.num_actions), np.float32),
        }
        obs, _ = envs.reset()
        self.out["obs"][T] = obs.reshape(B, -1)  # moved to row 0 by the first unroll
        self.prev_done = np.zeros(B, bool)
        self.ep_return = np.zeros(B)

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions sampled from the policy's softmax for a batch of observations, and its logits."""
        with torch.no_grad():
            logits = self.policy(torch.from_numpy(obs)).numpy()
        # Gumbel-max: argmax(logits + Gumbel noise) is a sample of softmax(logits), in one numpy pass.
        gumbel = -np.log(-np.log(self.rng.random(logits.shape)))
        return np.argmax(logits + gumbel, axis=1), logits

    def unroll(self) -> dict:
        """Step every copy ``unroll_length`` times.

        Returns the unroll arrays (views, overwritten by the next call), the
        number of real env steps and the returns of the episodes that ended.
        """
        o = self.out
        o["obs"][0] = o["obs"][self.T]
        finished = []
        steps = 0
        for t in range(self.T):
            actions, logits = self.act(o["obs"][t])
            obs, reward, term, trunc, _ = self.envs.step(actions)
            o["obs"][t + 1] = obs.reshape(self.B, -1)
            o["action"][t], o["logits"][t] = actions, logits
            o["reset"][t] = self.prev_done
            o["reward"][t] = np.where(self.prev_done, 0.0, reward)
            o["terminated"][t], o["truncated"][t] = term & ~self.prev_done, trunc & ~self.prev_done
            steps += int(self.B - self.prev_done.sum())
            self.ep_return += o["reward"][t]
            done = (term | trunc) & ~self.prev_done
            finished.extend(self.ep_return[done].tolist())
            self.ep_return[done] = 0.0
            self.prev_done = done
        return {**o, "steps": steps, "episode_returns": finished}

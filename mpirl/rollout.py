"""The actor side shared by every algorithm: vector environments, autoreset bookkeeping, unrolls, n-step rows.

Actors do not know about ranks or MPI: they fill numpy arrays shaped by the
environment's :class:`~mpirl.specs.EnvSpec` (``[T+1, B, *obs_shape]`` in the
observation's dtype) that the wirings copy into messages.

Gymnasium's next-step autoreset is assumed throughout: the step after an
episode's end only resets that copy (its action is ignored, its reward is 0),
and the observation returned at the ending step is the true final one.
:class:`Autoreset` keeps that bookkeeping in one place.
"""
from __future__ import annotations

import numpy as np
import torch

from mpirl.envs import make_vec_env  # noqa: F401  (re-exported: mpirl.rollout.make_vec_env)
from mpirl.functional import double_q_targets, n_step_transitions
from mpirl.seeding import capture_env_rng, rank_rng_doc, restore_env_rng
from mpirl.specs import env_spec


def reward_clip_of(envs) -> float:
    """The ``env.reward_clip`` a vector env was made with (:func:`mpirl.envs.make_vec_env`; 0: none)."""
    return float(getattr(envs, "mpirl_reward_clip", 0.0))


class Autoreset:
    """Per-copy episode bookkeeping under next-step autoreset: reset steps, real steps, finished returns.

    ``reward_clip`` > 0 clips the rewards :meth:`step` returns (what the
    learner sees) to [-reward_clip, reward_clip]; episode returns add the
    rewards as the environment gave them.
    """

    def __init__(self, num_envs: int, reward_clip: float = 0.0):
        self.prev_done = np.zeros(num_envs, bool)
        self.ep_return = np.zeros(num_envs)
        self.reward_clip = float(reward_clip)

    def step(self, reward, terminated, truncated, finished: list) -> tuple:
        """Account one vector step; returns ``(reset, reward, terminated, truncated, real_steps)``.

        ``reset`` flags the copies whose step only reset them: their reward and
        end flags are zeroed, and they count as no env step. Returns of the
        episodes that ended at this step are appended to ``finished``.
        """
        reset = self.prev_done
        reward = np.where(reset, 0.0, reward)
        terminated, truncated = terminated & ~reset, truncated & ~reset
        self.ep_return += reward
        done = terminated | truncated
        finished.extend(self.ep_return[done].tolist())
        self.ep_return[done] = 0.0
        self.prev_done = done
        if self.reward_clip > 0:
            reward = np.clip(reward, -self.reward_clip, self.reward_clip)
        return reset, reward, terminated, truncated, int(len(reset) - reset.sum())


class UnrollActor:
    """Samples actions from the policy in B environment copies; returns T x B unrolls.

    ``policy(obs)`` gives the action distribution's parameters for a batch of
    observations; ``dist`` (default: a Categorical over the env's actions)
    samples from them with the actor's own Generator ``rng``. Observations are
    stored ``[T+1, B, *obs_shape]``: the last observation of one unroll is the
    first of the next, so no transition is lost between unrolls. Reset steps
    are flagged in ``reset`` (reward 0, no episode) and not counted as env
    steps. ``policy_params`` holds the behaviour distribution's parameters.
    """

    def __init__(self, envs, policy, unroll_length: int, rng: np.random.Generator, dist=None):
        self.envs, self.policy, self.rng = envs, policy, rng
        self.spec = env_spec(envs)
        if dist is None:
            from mpirl.networks.distributions import Categorical

            dist = Categorical(self.spec.action)
        self.dist = dist
        # What the environment is stepped with (a Box's clip or squash); the unroll keeps the sampled action.
        self.to_env = getattr(dist, "to_env", None) or (lambda a: a)
        self.T, self.B = unroll_length, envs.num_envs
        T, B = self.T, self.B
        self.out = {
            "obs": self.spec.obs_array(T + 1, B),
            "action": self.spec.action_array(T, B),
            "reward": np.zeros((T, B), np.float32),
            "terminated": np.zeros((T, B), np.uint8),
            "truncated": np.zeros((T, B), np.uint8),
            "reset": np.zeros((T, B), np.uint8),
            "policy_params": np.zeros((T, B, self.dist.num_params), np.float32),
        }
        obs, _ = envs.reset()
        self.out["obs"][T] = obs  # moved to row 0 by the first unroll
        self.episodes = Autoreset(B, reward_clip_of(envs))

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Actions sampled from the policy for a batch of observations, and the distribution's parameters."""
        with torch.no_grad():
            params = self.policy(torch.from_numpy(obs)).numpy()
        return self.dist.sample(params, self.rng), params

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
            actions, params = self.act(o["obs"][t])
            obs, reward, term, trunc, _ = self.envs.step(self.to_env(actions))
            o["obs"][t + 1] = obs
            o["action"][t], o["policy_params"][t] = actions, params
            o["reset"][t], o["reward"][t], o["terminated"][t], o["truncated"][t], n = \
                self.episodes.step(reward, term, trunc, finished)
            steps += n
        return {**o, "steps": steps, "episode_returns": finished}


def resumed_sampling(ctx, envs, resumed_steps: int) -> np.random.Generator:
    """An actor's action-sampling Generator, with ``envs`` put back where the checkpoint left them.

    A fresh run (or a rank the checkpoint has no state for) derives the
    Generator from one draw of this rank's stream and the env steps; on
    resume it is the state this actor reported for the checkpoint
    (``extra["actor_rng"]``, see :func:`rng_doc`), and its environments' RNGs
    (``extra["env_rng"]``) are restored before their first reset. Call before
    building the :class:`UnrollActor`.
    """
    saved = ctx.restored_extra.get("actor_rng")
    if saved is None:
        rng = np.random.default_rng([int(ctx.rng.integers(2**31)), resumed_steps])
    else:  # restored, not derived again (and this rank's generator is not drawn from)
        rng = np.random.default_rng()
        rng.bit_generator.state = saved
    restore_env_rng(envs, ctx.restored_extra.get("env_rng"))
    return rng


def rng_doc(ctx, actor: UnrollActor) -> dict:
    """What an actor reports for a checkpoint: its RNG states now, with the sampling and environment RNGs."""
    return rank_rng_doc(ctx.rng, {"actor_rng": actor.rng.bit_generator.state, "env_rng": capture_env_rng(actor.envs)})


class NStepActor:
    """Acts epsilon-greedily in B environment copies; emits T x B n-step transitions per ``collect``.

    ``q(obs)`` gives action values. It keeps the last ``n - 1`` steps of each
    unroll so that every window is complete when emitted: a round of T steps
    yields exactly T x B slots, with ``valid`` False for the reset steps.
    For image observations a round carries each observation once (see
    :meth:`collect`), for the frame replay.
    """

    def __init__(self, envs, q, rollout_steps: int, n_step: int, gamma: float, rng):
        self.envs, self.net, self.rng = envs, q, rng
        self.T, self.n, self.gamma = rollout_steps, n_step, gamma
        self.B = envs.num_envs
        self.spec = env_spec(envs)
        self.num_actions = self.spec.action.n
        L = self.T + self.n - 1
        self.obs = self.spec.obs_array(L + 1, self.B)
        self.act = self.spec.action_array(L, self.B)
        self.rew = np.zeros((L, self.B), np.float32)
        self.term = np.zeros((L, self.B), bool)
        self.trunc = np.zeros((L, self.B), bool)
        self.dummy = np.ones((L, self.B), bool)  # the first n-1 slots hold no step yet
        obs, _ = envs.reset()
        self.obs[self.n - 1] = obs
        self.episodes = Autoreset(self.B, reward_clip_of(envs))
        self.fresh = True
        self.history = self.spec.obs_kind == "image"  # as mpirl.algos.dqn.messages.uses_frames

    def act_batch(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations."""
        with torch.no_grad():
            greedy = self.net(torch.from_numpy(obs)).argmax(dim=-1).numpy()
        explore = self.rng.random(len(obs)) < epsilon
        return np.where(explore, self.rng.integers(self.num_actions, size=len(obs)), greedy)

    def collect(self, epsilon: float) -> dict:
        """Step every copy ``rollout_steps`` times; return the flat transitions and finished episodes.

        Slot ``t * B + b`` is the window starting at step t of copy b. Vector
        observations come as ``obs`` and ``next_obs`` per slot; image ones as
        ``history[T + n, B, ...]`` (the observations of the round, the first
        n those the previous round ended with) and ``boot`` (each slot's
        next_obs row: ``obs = history[t, b]``, ``next_obs = history[boot, b]``).
        """
        n, T, B = self.n, self.T, self.B
        if not self.fresh:
            # Keep the last n-1 steps (and their observations) in front of the new ones.
            self.obs[:n] = self.obs[T:T + n]
            for arr in (self.act, self.rew, self.term, self.trunc, self.dummy):
                arr[:n - 1] = arr[T:T + n - 1]
        self.fresh = False
        finished = []
        for i in range(n - 1, n - 1 + T):
            actions = self.act_batch(self.obs[i], epsilon)
            obs, reward, term, trunc, _ = self.envs.step(actions)
            self.obs[i + 1] = obs
            self.act[i] = actions
            self.dummy[i], self.rew[i], self.term[i], self.trunc[i], _ = \
                self.episodes.step(reward, term, trunc, finished)
        ns = n_step_transitions(self.rew, self.term, self.trunc, self.gamma, n)
        cols = np.arange(B)
        boot = ns.bootstrap_index[:T]
        valid = ~self.dummy[:T] & ns.valid[:T]
        obs_shape = self.spec.obs_shape
        out = {  # copies: the history arrays are shifted on the next call
            "action": self.act[:T].reshape(T * B, *self.act.shape[2:]),
            "reward": ns.returns[:T].reshape(-1).astype(np.float32),
            "discount": ns.discounts[:T].reshape(-1).astype(np.float32),
            "valid": valid.reshape(-1),
            "steps": int((~self.dummy[n - 1:n - 1 + T]).sum()),
            "episode_returns": finished,
        }
        if self.history:
            return {"history": self.obs.copy(), "boot": boot.reshape(-1), **out}
        return {"obs": self.obs[:T].reshape(T * B, *obs_shape).copy(),
                "next_obs": self.obs[boot, cols[None, :]].reshape(T * B, *obs_shape), **out}

    def priorities(self, batch: dict) -> np.ndarray:
        """Initial |n-step TD error| of transitions under this actor's network (Ape-X)."""
        if "history" in batch:
            return self._history_priorities(batch)
        with torch.no_grad():
            obs = torch.from_numpy(batch["obs"])
            q_next = self.net(torch.from_numpy(batch["next_obs"]))
            target = double_q_targets(q_next, q_next, torch.from_numpy(batch["reward"]),
                                      torch.from_numpy(batch["discount"]))
            q = self.net(obs).gather(1, torch.from_numpy(batch["action"])[:, None]).squeeze(1)
            return (target - q).abs().numpy()

    def _history_priorities(self, batch: dict) -> np.ndarray:
        # One pass over the T + n observations instead of 2 T: obs and next_obs are rows of the history.
        hist = batch["history"]
        rows, B = hist.shape[:2]
        slots = np.arange(len(batch["boot"]))
        with torch.no_grad():
            q_all = self.net(torch.from_numpy(hist.reshape(rows * B, *hist.shape[2:]))).reshape(rows, B, -1)
            q_next = q_all[torch.from_numpy(batch["boot"]), torch.from_numpy(slots % B)]
            target = double_q_targets(q_next, q_next, torch.from_numpy(batch["reward"]),
                                      torch.from_numpy(batch["discount"]))
            q = q_all[torch.from_numpy(slots // B), torch.from_numpy(slots % B)]
            q = q.gather(1, torch.from_numpy(batch["action"])[:, None]).squeeze(1)
            return (target - q).abs().numpy()

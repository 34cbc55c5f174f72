"""A DQN actor: vectorised environments, a local Q-network copy, n-step transitions out.

The actor does not know about ranks or MPI: ``collect`` returns numpy arrays
that the wiring (``run.py``) ships to the learner.
"""
from __future__ import annotations

import numpy as np
import torch

from mpirl.functional import double_q_targets, n_step_transitions


def make_vec_env(env_cfg, seed: int):
    """``env.num_envs`` copies as one gymnasium vector env (the id's fast vector version if it has one).

    Gymnasium's default next-step autoreset is assumed: the step after an
    episode's end only resets that copy (its action is ignored), so the
    observation returned at the ending step is the true final observation.
    """
    import gymnasium as gym

    kwargs = dict(env_cfg.kwargs)
    if env_cfg.max_episode_steps:
        kwargs["max_episode_steps"] = env_cfg.max_episode_steps
    envs = gym.make_vec(env_cfg.id, num_envs=env_cfg.num_envs, **kwargs)
    envs.reset(seed=seed)
    return envs


class VectorActor:
    """Acts epsilon-greedily in B environment copies; emits T x B n-step transitions per ``collect``.

    It keeps the last ``n - 1`` steps of each unroll so that every window is
    complete when emitted: a round of T steps yields exactly T x B slots, with
    ``valid`` False for the reset steps of next-step autoreset.
    """

    def __init__(self, envs, net: torch.nn.Module, rollout_steps: int, n_step: int, gamma: float, rng):
        self.envs, self.net, self.rng = envs, net, rng
        self.T, self.n, self.gamma = rollout_steps, n_step, gamma
        self.B = envs.num_envs
        self.obs_dim = int(np.prod(envs.single_observation_space.shape))
        self.num_actions = int(envs.single_action_space.n)
        L = self.T + self.n - 1
        self.obs = np.zeros((L + 1, self.B, self.obs_dim), np.float32)
        self.act = np.zeros((L, self.B), np.int64)
        self.rew = np.zeros((L, self.B), np.float32)
        self.term = np.zeros((L, self.B), bool)
        self.trunc = np.zeros((L, self.B), bool)
        self.dummy = np.ones((L, self.B), bool)  # the first n-1 slots hold no step yet
        obs, _ = envs.reset()
        self.obs[self.n - 1] = obs.reshape(self.B, -1)
        self.prev_done = np.zeros(self.B, bool)
        self.ep_return = np.zeros(self.B)
        self.fresh = True

    def act_batch(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations."""
        with torch.no_grad():
            greedy = self.net(torch.from_numpy(obs)).argmax(dim=1).numpy()
        explore = self.rng.random(len(obs)) < epsilon
        return np.where(explore, self.rng.integers(self.num_actions, size=len(obs)), greedy)

    def collect(self, epsilon: float) -> dict:
        """Step every copy ``rollout_steps`` times; return the flat transitions and finished episodes."""
        n, T = self.n, self.T
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
            self.obs[i + 1] = obs.reshape(self.B, -1)
            self.act[i], self.rew[i], self.term[i], self.trunc[i] = actions, reward, term, trunc
            self.dummy[i] = self.prev_done
            self.rew[i][self.prev_done] = 0.0
            self.ep_return += np.where(self.prev_done, 0.0, reward)
            done = (term | trunc) & ~self.prev_done
            finished.extend(self.ep_return[done].tolist())
            self.ep_return[done] = 0.0
            self.prev_done = done
        ns = n_step_transitions(self.rew, self.term & ~self.dummy, self.trunc & ~self.dummy, self.gamma, n)
        cols = np.arange(self.B)
        boot = ns.bootstrap_index[:T]
        valid = ~self.dummy[:T] & ns.valid[:T]
        return {  # copies: the history arrays are shifted on the next call
            "obs": self.obs[:T].reshape(T * self.B, -1).copy(),
            "action": self.act[:T].reshape(-1),
            "reward": ns.returns[:T].reshape(-1).astype(np.float32),
            "discount": ns.discounts[:T].reshape(-1).astype(np.float32),
            "next_obs": self.obs[boot, cols[None, :]].reshape(T * self.B, -1),
            "valid": valid.reshape(-1),
            "steps": int((~self.dummy[n - 1:n - 1 + T]).sum()),
            "episode_returns": finished,
        }

    def priorities(self, batch: dict) -> np.ndarray:
        """Initial |n-step TD error| of transitions under this actor's network (Ape-X)."""
        with torch.no_grad():
            obs = torch.from_numpy(batch["obs"])
            q_next = self.net(torch.from_numpy(batch["next_obs"]))
            target = double_q_targets(q_next, q_next, torch.from_numpy(batch["reward"]),
                                      torch.from_numpy(batch["discount"]))
            q = self.net(obs).gather(1, torch.from_numpy(batch["action"])[:, None]).squeeze(1)
            return (target - q).abs().numpy()

"""DQN-family parts without MPI: the actor's n-step assembly across rounds, the rate limiter, learner state."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from mpirl.algos.apex.run import RateLimiter, actor_epsilon, warmup_epsilon
from mpirl.algos.apex.config import ApexConfig
from mpirl.algos.dqn.config import DQNConfig
from mpirl.algos.dqn.learner import DQNLearner
from mpirl.algos.dqn.messages import replay_spec
from mpirl.nets import QNetwork
from mpirl.replay import PrioritizedReplay, ReplayBuffer
from mpirl.rollout import NStepActor as VectorActor
from mpirl.specs import DiscreteSpec, EnvSpec


class Counter(gym.Env):
    """obs = [episode id, t]; reward = t + 1; terminates after `length` steps or truncates at `limit`."""

    observation_space = gym.spaces.Box(-1e9, 1e9, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length, limit):
        self.length, self.limit, self.episode, self.t = length, limit, -1, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return np.array([self.episode, 0], np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([self.episode, self.t], np.float32)
        return obs, float(self.t), self.t >= self.length, self.t >= self.limit, {}


def reference(length, limit, n, gamma, t):
    """n-step return, discount and bootstrap time from time t of an episode (paper notation)."""
    end = min(length, limit)
    m = min(n, end - t)
    ret = sum(gamma ** k * (t + k + 1) for k in range(m))
    terminated = t + m == length
    return ret, (0.0 if terminated else gamma ** m), t + m


@pytest.mark.parametrize("length, limit, n, T", [(5, 100, 3, 4), (7, 4, 2, 3), (3, 100, 1, 5), (6, 6, 4, 2)])
def test_actor_emits_exact_n_step_transitions_across_rounds(length, limit, n, T):
    gamma = 0.9
    envs = gym.vector.SyncVectorEnv([lambda: Counter(length, limit), lambda: Counter(length + 1, limit)])
    net = torch.nn.Linear(2, 2)
    actor = VectorActor(envs, net, rollout_steps=T, n_step=n, gamma=gamma, rng=np.random.default_rng(0))
    seen = real = 0
    for _ in range(12):
        out = actor.collect(epsilon=1.0)
        real += out["steps"]
        for i in np.flatnonzero(out["valid"]):
            env_index = i % 2
            ep_len = length + env_index
            ep, t = out["obs"][i]
            ret, disc, boot_t = reference(ep_len, limit, n, gamma, int(t))
            assert out["reward"][i] == pytest.approx(ret, rel=1e-6)
            assert out["discount"][i] == pytest.approx(disc, rel=1e-6)
            assert tuple(out["next_obs"][i]) == (ep, boot_t)  # same episode, true final obs on truncation
            seen += 1
    # Every real step appears once, except the last n-1 per env whose windows go out next round.
    assert real - (n - 1) * 2 <= seen <= real


def test_actor_reports_finished_episode_returns():
    envs = gym.vector.SyncVectorEnv([lambda: Counter(4, 100)])
    actor = VectorActor(envs, torch.nn.Linear(2, 2), rollout_steps=10, n_step=1, gamma=0.9,
                        rng=np.random.default_rng(0))
    out = actor.collect(epsilon=1.0)
    assert out["episode_returns"] == [10.0, 10.0]  # 1+2+3+4, twice
    assert out["steps"] == 8  # 10 calls, two of them the resets after episode ends


def test_rate_limiter_holds_the_ratio():
    lim = RateLimiter(samples_per_insert=4.0, error_buffer=100, min_size=50)
    assert not lim.can_sample(10)
    lim.inserted = 50
    assert lim.can_sample(10) and lim.can_sample(100) and not lim.can_sample(101)
    lim.sampled = 100
    assert not lim.can_sample(1) and lim.can_insert()
    lim.inserted, lim.sampled = 200, 0  # learner 600 samples behind: stop taking data
    assert not lim.can_insert() and lim.can_sample(64)


def test_apex_epsilons_follow_the_paper():
    a = ApexConfig()
    eps = [actor_epsilon(a, i, 8) for i in range(8)]
    assert eps[0] == pytest.approx(0.4) and eps[-1] == pytest.approx(0.4 ** 8)
    assert all(x > y for x, y in zip(eps, eps[1:]))
    assert actor_epsilon(a, 0, 1) == pytest.approx(0.4)


def test_warmup_epsilon_falls_linearly_to_the_fixed_value():
    assert warmup_epsilon(0.1, 0, 1000) == pytest.approx(1.0)
    assert warmup_epsilon(0.1, 500, 1000) == pytest.approx(0.55)
    assert warmup_epsilon(0.1, 1000, 1000) == pytest.approx(0.1)
    assert warmup_epsilon(0.1, 5000, 1000) == pytest.approx(0.1)
    assert warmup_epsilon(0.1, 0, 0) == pytest.approx(0.1)  # no warm-up: the paper's fixed rate


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("prioritized", [False, True])
def test_learner_state_round_trip_continues_identically(prioritized, optimizer):
    a = DQNConfig(hidden=[16], batch_size=8, target_update_period=3, optimizer=optimizer)
    rng = np.random.default_rng(0)

    def make(seed):
        torch.manual_seed(seed)
        spec = replay_spec(EnvSpec((3,), np.dtype(np.float32), DiscreteSpec(2)))
        mem = PrioritizedReplay(100, spec) if prioritized else ReplayBuffer(100, spec)
        return DQNLearner(a, QNetwork(3, 2, tuple(a.hidden), a.dueling), mem, np.random.default_rng(1))

    first = make(0)
    data = {"obs": rng.normal(size=(50, 3)).astype(np.float32), "action": rng.integers(2, size=50),
            "reward": rng.normal(size=50).astype(np.float32), "discount": np.full(50, 0.9, np.float32),
            "next_obs": rng.normal(size=(50, 3)).astype(np.float32)}
    first.replay.add(data)
    for _ in range(5):
        first.update()
    second = make(99)
    second.load_state_dict(first.state_dict(with_replay=True))
    second.updates, second.rng = first.updates, np.random.default_rng(7)
    first.rng = np.random.default_rng(7)
    for _ in range(4):
        assert first.update() == second.update()
    np.testing.assert_array_equal(first.flat, second.flat)


@pytest.mark.parametrize("doc, cls", [("apex.md", ApexConfig), ("dqn.md", DQNConfig)])
def test_algorithm_doc_lists_every_key(doc, cls):
    import dataclasses
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "algorithms", doc)
    with open(path) as f:
        text = f.read()
    missing = [fld.name for fld in dataclasses.fields(cls) if f"| `{fld.name}` |" not in text]
    assert not missing, f"docs/algorithms/{doc} does not document {missing}"
